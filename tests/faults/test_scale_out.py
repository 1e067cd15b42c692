"""Scale-out: two `exhale serve` and two `exhale worker` processes on one PostgreSQL database,
as docker/compose.yaml runs them. Readings go to either web process; a real receiver counts
webhook-ids. Nothing is recorded twice, sent twice, or run by two leaders at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app import migrate
from app.clock import local_today
from app.db import make_engine, make_sessionmaker
from app.measures.demo import nhs_numbers
from app.readings.models import Reading
from referral.models import OutboxMessage
from tests.app.readings_helpers import due_for, reading
from tests.faults.processes import (
    FAST_JOBS,
    WebServer,
    Worker,
    assert_one_leader_at_a_time,
    job_runs,
    seed_destination,
    seed_epr_client,
    undelivered,
    wait_until,
)
from tests.referral.delivery.receiver import Receiver

pytestmark = pytest.mark.postgres

READINGS = 40
IDENTICAL = 50
WEB_ENV = {"EXHALE_AUTH__API_REQUESTS_PER_MINUTE": "1000000", "EXHALE_LOG_LEVEL": "WARNING"}


@pytest.fixture
def database(fresh_database_url: str) -> str:
    migrate.upgrade(fresh_database_url)
    return fresh_database_url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver().running() as running:
        yield running


def _bodies() -> list[dict[str, Any]]:
    today = local_today()
    numbers = nhs_numbers(500)
    return [
        reading(
            on=today,
            nhs_number=next(numbers),
            edd=due_for(100, today),
            co_ppm=8,  # refers: one outbox message each
            source_id=f"scale-{n}",
        )
        for n in range(READINGS)
    ]


def _post_at_once(
    urls: list[str], api_key: str, jobs: list[tuple[dict[str, Any], str]]
) -> list[int]:
    """Post every (body, idempotency key) to the web processes in turn, all released together."""
    start = threading.Barrier(len(jobs))
    clients = [httpx.Client(base_url=url, timeout=60) for url in urls]

    def post(index: int) -> int:
        body, key = jobs[index]
        headers = {"Authorization": f"Bearer {api_key}"} | ({"Idempotency-Key": key} if key else {})
        start.wait(timeout=30)
        client = clients[index % len(clients)]
        return client.post("/api/v1/readings", json=body, headers=headers).status_code

    try:
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            return list(pool.map(post, range(len(jobs))))
    finally:
        for client in clients:
            client.close()


def _count(database_url: str, model: type[Any]) -> int:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0
    finally:
        engine.dispose()


def test_two_web_and_two_worker_processes_never_double_record_send_or_run(
    database: str, receiver: Receiver, tmp_path: Path
) -> None:
    secret = seed_destination(database, url=receiver.url)
    api_key = seed_epr_client(database)
    webs = [WebServer(database, tmp_path / f"web-{n}.log", **WEB_ENV) for n in range(2)]
    workers = [
        Worker(database, tmp_path / f"worker-{n}.log", EXHALE_WORKER__JOB_INTERVALS_S=FAST_JOBS)
        for n in range(2)
    ]
    try:
        for web in webs:
            web.wait_ready()
        for worker in workers:
            worker.wait_for("relay_started")
        urls = [web.url for web in webs]

        # Fifty identical posts, released together and split across both web processes.
        identical = _bodies()[0] | {"source_id": "scale-identical"}
        statuses = Counter(_post_at_once(urls, api_key, [(identical, "same-key")] * IDENTICAL))
        assert statuses[201] == 1 and set(statuses) <= {200, 201, 409}, statuses

        # Distinct readings to both web processes at once, while the leader hands over.
        leading = lambda: [w for w in workers if w.count("worker_started")]  # noqa: E731
        wait_until(lambda: len(leading()) == 1, timeout_s=30, what="a leader")
        leader = leading()[0]
        statuses = Counter(_post_at_once(urls, api_key, [(b, "") for b in _bodies()]))
        assert statuses == {201: READINGS}, statuses
        assert leader.stop() == 0  # SIGTERM: its sends in flight finish, the standby takes over
        standby = next(w for w in workers if w is not leader)
        standby.wait_for("worker_started")
        wait_until(lambda: undelivered(database) == 0, timeout_s=60, what="all delivered")
        ran = len(job_runs(workers))
        wait_until(lambda: len(job_runs(workers)) >= ran + 3, timeout_s=30, what="new leader ran")
        assert standby.stop() == 0
    finally:
        for process in [*webs, *workers]:
            if process.process.poll() is None:
                process.kill()
            else:
                process.stop()

    assert _count(database, Reading) == READINGS + 1
    assert _count(database, OutboxMessage) == READINGS + 1
    arrivals = Counter(item.webhook_id for item in receiver.received)
    assert len(arrivals) == READINGS + 1, "an event was not delivered"
    assert set(arrivals.values()) == {1}, "an event was sent twice"
    for item in receiver.received:
        item.verify(secret)
    assert_one_leader_at_a_time(job_runs(workers))
    assert sum(worker.count("webhook_delivered") for worker in workers) == READINGS + 1
    for process in [*webs, *workers]:
        assert "Traceback" not in process.log.read_text()
