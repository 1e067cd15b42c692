"""Fifty identical posts at once make exactly one reading, with a key or with a source id.

The server is real (uvicorn on a loopback port); tests/faults/test_scale_out.py sends the same
fifty across two separate web processes.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app import migrate
from app.clock import local_today
from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope
from app.pregnancies.models import Pregnancy
from app.readings.models import Reading
from referral.models import OutboxMessage, Referral
from tests import factories
from tests.app.readings_helpers import due_for, reading
from tests.server import running_server

PARALLEL = 50


def _seed(database_url: str) -> str:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service = factories.make_service(session)
            unit = factories.make_unit(session, service=service)
            _client, secret = factories.make_api_client(session, role="epr", organisation=unit)
    finally:
        engine.dispose()
    return secret


def _counts(database_url: str) -> tuple[int, int, int]:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return (
                session.scalar(select(func.count()).select_from(Reading)) or 0,
                session.scalar(select(func.count()).select_from(Referral)) or 0,
                session.scalar(select(func.count()).select_from(OutboxMessage)) or 0,
            )
    finally:
        engine.dispose()


def _fire(url: str, headers: dict[str, str], body: dict[str, Any]) -> list[int]:
    start = threading.Barrier(PARALLEL)  # every post leaves together, not as threads start
    with httpx.Client(base_url=url, timeout=60) as client:

        def post(_: int) -> int:
            start.wait(timeout=30)
            return client.post("/api/v1/readings", json=body, headers=headers).status_code

        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            return list(pool.map(post, range(PARALLEL)))


def _body() -> dict[str, Any]:
    today = local_today()
    return reading(on=today, edd=due_for(84, today), co_ppm=7, smoking_status="smoker")


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["idempotency_key", "source_id"])
def test_fifty_identical_posts_make_one_reading(fresh_database_url: str, mode: str) -> None:
    secret = _seed(fresh_database_url)
    headers = {"Authorization": f"Bearer {secret}"}
    body = _body()
    if mode == "idempotency_key":
        headers["Idempotency-Key"] = "same-key-for-all-fifty"
    else:
        body["source_id"] = "epr-obs-parallel-1"
    settings = Settings(database_url=fresh_database_url, log_level="WARNING")
    with running_server(settings) as url:
        statuses = Counter(_fire(url, headers, body))
        assert statuses[201] == 1, statuses
        assert set(statuses) <= {200, 201, 409}, statuses
        # Anyone told 409 retries and gets the stored answer.
        with httpx.Client(base_url=url, timeout=30) as client:
            retry = client.post("/api/v1/readings", json=body, headers=headers)
        assert retry.status_code == 200
    assert _counts(fresh_database_url) == (1, 1, 1)  # one reading, one referral, one message


def _nhs_numbers(count: int) -> list[str]:
    """Valid synthetic NHS numbers (999 range), each with its modulus 11 check digit."""
    found = []
    stem = 999_000_100
    while len(found) < count:
        digits = [int(c) for c in str(stem)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check != 10:
            found.append(f"{stem}{0 if check == 11 else check}")
        stem += 1
    return found


@pytest.mark.postgres
def test_one_source_id_sent_for_different_women_at_once_makes_one_reading(
    fresh_database_url: str,
) -> None:
    """A sender that reuses a source id gets its first reading back, even for another woman,
    and no pregnancy is registered for the others."""
    secret = _seed(fresh_database_url)
    headers = {"Authorization": f"Bearer {secret}"}
    bodies = [
        {**_body(), "nhs_number": nhs, "source_id": "epr-obs-reused"} for nhs in _nhs_numbers(20)
    ]
    settings = Settings(database_url=fresh_database_url, log_level="WARNING")
    with running_server(settings) as url:
        start = threading.Barrier(len(bodies))
        with httpx.Client(base_url=url, timeout=60) as client:

            def post(body: dict[str, Any]) -> httpx.Response:
                start.wait(timeout=30)
                return client.post("/api/v1/readings", json=body, headers=headers)

            with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
                answers = list(pool.map(post, bodies))
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 200: len(bodies) - 1}, statuses
    assert len({a.json()["id"] for a in answers}) == 1  # every answer is the one stored reading
    assert _counts(fresh_database_url) == (1, 1, 1)
    engine = make_engine(fresh_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            assert session.scalar(select(func.count()).select_from(Pregnancy)) == 1
    finally:
        engine.dispose()
