"""/metrics: what Prometheus scrapes, who may scrape it, and that no label names a patient."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from app import migrate
from app.config import Settings
from app.db import utcnow
from app.monitors.models import DeviceReading
from referral.models import OutboxStatus
from tests import factories
from tests.app.access_world import SHARED_NHS_NUMBER, build_side, headers_for
from tests.helpers import REPO, exhale_env, free_port

TOKEN = "metrics-token-for-tests-0123456789"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_json=True, metrics_token=TOKEN)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(client: TestClient) -> Samples:
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _requests(samples: Samples, **labels: str) -> float:
    key = ("exhale_http_requests_total", tuple(sorted(labels.items())))
    return samples.get(key, 0.0)


def test_requests_are_counted_by_route_template_never_by_concrete_path(
    client: TestClient, session: Session
) -> None:
    side = build_side(session)
    headers = headers_for(client, session, side, "epr")
    client.get(f"/api/v1/pregnancies/{side.pregnancy.id}", headers=headers)
    client.get("/api/v1/pregnancies", params={"nhs_number": SHARED_NHS_NUMBER}, headers=headers)
    client.get("/api/v1/pregnancies/999999", headers=headers)
    client.get(f"/no/such/page/{SHARED_NHS_NUMBER}")
    client.get("/api/v1/measures/staff/7", headers=headers)  # a router inside a router

    response = client.get("/metrics", headers=SCRAPE)
    samples = _samples(client)

    by_id = {"method": "GET", "route": "/api/v1/pregnancies/{id}"}
    assert _requests(samples, **by_id, status_class="2xx") == 1
    assert _requests(samples, **by_id, status_class="4xx") == 1
    assert _requests(samples, method="GET", route="unmatched", status_class="4xx") == 1
    nested = {"method": "GET", "route": "/api/v1/measures/staff/{id}", "status_class": "4xx"}
    assert _requests(samples, **nested) == 1
    histogram = (
        "exhale_http_request_duration_seconds_count",
        tuple(sorted({**by_id, "status_class": "2xx"}.items())),
    )
    assert samples[histogram] == 1
    assert SHARED_NHS_NUMBER not in response.text
    assert f"/pregnancies/{side.pregnancy.id}" not in response.text


def test_outbox_and_delivery_failures_are_reported(client: TestClient, session: Session) -> None:
    side = build_side(session)
    old = factories.make_outbox_message(
        session, referral=side.referral, now=utcnow() - dt.timedelta(minutes=10)
    )
    old.created_at = utcnow() - dt.timedelta(minutes=10)
    old.attempts = 2
    factories.make_outbox_message(session, referral=side.referral, event_type="referral.updated")
    gave_up = factories.make_outbox_message(
        session, referral=side.referral, event_type="referral.closed"
    )
    gave_up.status = OutboxStatus.failed.value
    session.flush()

    samples = _samples(client)

    assert samples[("exhale_outbox_pending_messages", ())] == 2
    assert samples[("exhale_outbox_retrying_messages", ())] == 1
    assert samples[("exhale_delivery_failed_messages", ())] == 1
    assert 590 <= samples[("exhale_outbox_oldest_pending_age_seconds", ())] <= 900
    assert samples[("exhale_metrics_database_up", ())] == 1


def test_bridge_lag_is_the_latest_arrivals_delay_since_measurement(
    client: TestClient, session: Session
) -> None:
    side = build_side(session)
    now = utcnow()
    for sequence, (measured_ago, received_ago) in enumerate([(600, 10), (90, 30)], start=1):
        session.add(
            DeviceReading(
                unit_id=side.unit.id,
                device_serial="SIM-LAG",
                sequence=sequence,
                co_ppm=2,
                measured_at=now - dt.timedelta(seconds=measured_ago),
                received_at=now - dt.timedelta(seconds=received_ago),
            )
        )
        session.flush()

    samples = _samples(client)

    assert samples[("exhale_bridge_lag_seconds", ())] == pytest.approx(60, abs=1)
    last = samples[("exhale_bridge_last_received_timestamp_seconds", ())]
    assert last == pytest.approx((now - dt.timedelta(seconds=30)).timestamp(), abs=1)


def test_a_scrape_without_the_token_is_refused(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    refused = client.get("/metrics", headers={"Authorization": "Bearer wrong-token"})
    assert refused.status_code == 401
    assert refused.json()["error"] == "not_authenticated"
    assert "EXHALE_METRICS_TOKEN" in refused.json()["detail"]


@pytest.fixture
def open_app(database_url: str, app: FastAPI) -> Iterator[FastAPI]:
    app.state.settings = Settings(database_url=database_url, log_json=True)
    yield app


def test_without_a_token_only_this_machine_may_scrape(open_app: FastAPI) -> None:
    with TestClient(open_app, client=("127.0.0.1", 50000)) as local:
        assert local.get("/metrics").status_code == 200
    with TestClient(open_app, client=("10.0.0.7", 50000)) as remote:
        response = remote.get("/metrics")
    assert response.status_code == 403
    assert "EXHALE_METRICS_TOKEN" in response.json()["detail"]


def test_metrics_are_not_part_of_the_api_description(app: FastAPI) -> None:
    assert "/metrics" not in app.openapi()["paths"]


def test_several_web_processes_report_their_requests_together(
    tmp_path: Path, fresh_database_url: str
) -> None:
    migrate.upgrade(fresh_database_url)
    shared = tmp_path / "prometheus"
    shared.mkdir()
    port = free_port()
    env = exhale_env(
        fresh_database_url,
        PROMETHEUS_MULTIPROC_DIR=str(shared),
        EXHALE_METRICS_TOKEN=TOKEN,
        EXHALE_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
    command += ["--workers", "2", "--port", str(port)]
    server = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline, sent = time.monotonic() + 60, 0
        while len(list(shared.glob("counter_*.db"))) < 2:  # each process has answered
            assert time.monotonic() < deadline, "two web processes never answered"
            try:
                sent += httpx.get(f"{base}/healthz", timeout=5).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        with httpx.Client(base_url=base) as web:
            for _ in range(40):
                assert web.get("/healthz").status_code == 200
            sent += 40
            scraped = web.get("/metrics", headers=SCRAPE).text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    totals = {
        sample.labels["route"]: sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "exhale_http_requests_total"
    }
    assert totals["/healthz"] == sent
