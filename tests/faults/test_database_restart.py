"""PostgreSQL restarted under load: a real `exhale serve` keeps answering, loses nothing it
acknowledged, and its connection pool recovers by itself.

The cluster is a private throwaway one (tests/faults/cluster.py): the suite's shared server is
never restarted.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app import migrate
from app.clock import local_today
from app.db import make_engine, make_sessionmaker
from app.measures.demo import nhs_numbers
from app.readings.models import Reading
from tests.app.readings_helpers import due_for, reading
from tests.faults.cluster import Cluster, private_cluster
from tests.faults.processes import (
    FAST_JOBS,
    WebServer,
    Worker,
    assert_one_leader_at_a_time,
    job_runs,
    seed_destination,
    seed_epr_client,
    seed_events,
    undelivered,
    wait_until,
)
from tests.referral.delivery.receiver import Receiver

pytestmark = pytest.mark.postgres

OUTAGE_S = 1.5
SENDERS = 4
PAUSE_AFTER_REFUSAL_S = 0.1


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with private_cluster() as running:
        migrate.upgrade(running.url)
        yield running


@dataclass(frozen=True)
class Outcome:
    source_id: str
    body: dict[str, Any]
    sent_at: float
    status: int | None  # None: no HTTP answer at all
    answer: dict[str, Any]
    headers: httpx.Headers | None


class ReadingStream:
    """``SENDERS`` threads posting new readings (each its own woman and source_id) until stopped."""

    def __init__(self, url: str, api_key: str) -> None:
        self._url = url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._numbers = nhs_numbers(100)
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.outcomes: list[Outcome] = []
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(SENDERS)]

    def _next_body(self) -> tuple[str, dict[str, Any]]:
        today = local_today()
        with self._lock:
            source_id = f"restart-{next(self._sequence)}"
            nhs_number = next(self._numbers)
        body = reading(
            on=today, nhs_number=nhs_number, edd=due_for(84, today), co_ppm=7, source_id=source_id
        )
        return source_id, body

    def post(self, client: httpx.Client, source_id: str, body: dict[str, Any]) -> Outcome:
        sent_at = time.monotonic()
        try:
            response = client.post("/api/v1/readings", json=body, headers=self._headers)
        except httpx.TransportError:
            return Outcome(source_id, body, sent_at, None, {}, None)
        return Outcome(
            source_id, body, sent_at, response.status_code, response.json(), response.headers
        )

    def _send(self) -> None:
        with httpx.Client(base_url=self._url, timeout=30) as client:
            while not self._stop.is_set():
                outcome = self.post(client, *self._next_body())
                with self._lock:
                    self.outcomes.append(outcome)
                if outcome.status != 201:
                    self._stop.wait(PAUSE_AFTER_REFUSAL_S)  # as a client would, though briefer

    def acknowledged_since(self, moment: float) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.status == 201 and o.sent_at >= moment)

    def __enter__(self) -> ReadingStream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _stored(database_url: str) -> dict[str, int]:
    """source_id -> reading id, read back from the database."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(select(Reading.source_id, Reading.id)).all()
            return {str(row.source_id): row.id for row in rows}
    finally:
        engine.dispose()


def test_a_database_restart_under_load_loses_no_acknowledged_reading(
    cluster: Cluster, tmp_path: Path
) -> None:
    api_key = seed_epr_client(cluster.url)
    server = WebServer(
        cluster.url,
        tmp_path / "web.log",
        EXHALE_AUTH__API_REQUESTS_PER_MINUTE="1000000",
        EXHALE_DATABASE_CONNECT_TIMEOUT_S="2",
    )
    try:
        server.wait_ready()
        with ReadingStream(server.url, api_key) as stream:
            wait_until(lambda: stream.acknowledged_since(0) >= 12, timeout_s=30, what="warm-up")
            cluster.stop("fast")  # every open connection is cut, as in a restart or failover
            time.sleep(OUTAGE_S)
            cluster.start()
            back = time.monotonic()
            wait_until(lambda: stream.acknowledged_since(back) >= 12, timeout_s=30, what="recovery")
        outcomes = list(stream.outcomes)

        statuses = Counter(o.status for o in outcomes)
        assert set(statuses) <= {201, 503}, statuses  # never a 500, never a dropped connection
        assert statuses[503] > 0, "the outage was never seen: the test proved nothing"
        for outcome in (o for o in outcomes if o.status == 503):
            assert outcome.answer["error"] == "database_unavailable"
            assert "Send it again" in outcome.answer["detail"]
            assert outcome.headers is not None and outcome.headers["retry-after"]
        after = [o.status for o in outcomes if o.sent_at >= back]
        assert after and set(after) == {201}, "the pool handed out a dead connection"

        stored = _stored(cluster.url)
        for outcome in (o for o in outcomes if o.status == 201):
            assert stored.get(outcome.source_id) == outcome.answer["id"], "acknowledged, lost"

        # The client's side of the contract: re-sending what was refused records each once.
        resend = ReadingStream(server.url, api_key)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for outcome in (o for o in outcomes if o.status != 201):
                again = resend.post(client, outcome.source_id, outcome.body)
                assert again.status in {200, 201}, again.answer
        stored = _stored(cluster.url)
        assert set(stored) == {o.source_id for o in outcomes}
    finally:
        server.stop()
    logged = server.log.read_text()
    assert "Traceback" not in logged and "unhandled_error" not in logged
    assert "database_unavailable" in logged


def test_after_a_database_restart_one_worker_leads_and_nothing_is_sent_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The leader's advisory lock ends with its database session: the old leader must notice and
    stand down, or two workers would run the scheduled jobs at once."""
    with Receiver().running() as receiver:
        secret = seed_destination(cluster.url, url=receiver.url)
        seed_events(cluster.url, referrals=3, events_each=1)
        workers = [
            Worker(
                cluster.url,
                tmp_path / f"worker-{n}.log",
                EXHALE_WORKER__JOB_INTERVALS_S=FAST_JOBS,
                EXHALE_DATABASE_CONNECT_TIMEOUT_S="2",
            )
            for n in range(2)
        ]
        try:
            wait_until(lambda: undelivered(cluster.url) == 0, timeout_s=30, what="delivered")
            wait_until(lambda: len(job_runs(workers)) >= 4, timeout_s=30, what="jobs ran")
            cluster.stop("fast")
            time.sleep(OUTAGE_S)
            cluster.start()
            starts = lambda: sum(worker.count("worker_started") for worker in workers)  # noqa: E731
            wait_until(lambda: starts() >= 2, timeout_s=30, what="a leader after the restart")
            seeded = seed_events(cluster.url, referrals=3, events_each=1)
            ran_before = len(job_runs(workers))
            wait_until(lambda: undelivered(cluster.url) == 0, timeout_s=30, what="delivered")
            wait_until(lambda: len(job_runs(workers)) >= ran_before + 4, timeout_s=30, what="jobs")
            # One at a time: if worker 0 leads since the restart, the still-running worker 1 takes
            # the lock back when it stops, and may run jobs before its own SIGTERM. A clean
            # handover, so the check below counts leadership terms, not workers.
            assert [worker.stop() for worker in workers] == [0, 0]
        finally:
            for worker in workers:
                if worker.process.poll() is None:
                    worker.kill()

    assert_one_leader_at_a_time(job_runs(workers))
    assert sum(worker.count("worker_leadership_lost") for worker in workers) == 1
    arrivals = Counter(item.webhook_id for item in receiver.received)
    assert set(arrivals) == {item.webhook_id for item in seeded}
    assert set(arrivals.values()) == {1}, "an event was sent twice"
    for item in receiver.received:
        item.verify(secret)
