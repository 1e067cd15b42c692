"""Webhook delivery when workers die mid-delivery or race each other (real processes, PostgreSQL).

The receiver is real: it records every request before answering, and every request is checked
with the standardwebhooks library's verifier.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from app import migrate
from tests.faults.processes import (
    Seeded,
    Worker,
    seed_destination,
    seed_events,
    undelivered,
    wait_until,
)
from tests.helpers import free_port
from tests.referral.delivery.receiver import (
    OK,
    Received,
    Receiver,
    ok_then_hold,
    respond,
    silent,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver().running() as running:
        yield running


@pytest.fixture
def database(fresh_database_url: str) -> str:
    migrate.upgrade(fresh_database_url)
    return fresh_database_url


def _check_arrivals(receiver: Receiver, seeded: list[Seeded], secret: str) -> Counter[str]:
    """Every event arrived, verified, under its one webhook-id with one body, in order per
    referral; returns how often each id arrived."""
    bodies: dict[str, set[bytes]] = defaultdict(set)
    first_arrival: dict[str, int] = {}
    for index, item in enumerate(receiver.received):
        item.verify(secret)
        bodies[item.webhook_id].add(item.body)
        first_arrival.setdefault(item.webhook_id, index)
    assert set(bodies) == {s.webhook_id for s in seeded}, "an event is missing or unknown"
    assert all(len(variants) == 1 for variants in bodies.values()), "one id, two bodies"
    by_referral: dict[int, list[Seeded]] = defaultdict(list)
    for item in seeded:
        by_referral[item.referral_id].append(item)
    for events in by_referral.values():
        arrivals = [first_arrival[e.webhook_id] for e in sorted(events, key=lambda e: e.message_id)]
        assert arrivals == sorted(arrivals), "a referral's events arrived out of order"
    return Counter(item.webhook_id for item in receiver.received)


def test_a_worker_killed_mid_delivery_again_and_again_loses_nothing(
    database: str, receiver: Receiver, tmp_path: Path
) -> None:
    secret = seed_destination(database, url=receiver.url)
    seeded = seed_events(database, referrals=4, events_each=3)
    # Even rounds: killed after the receiver's 2xx, before the result is recorded.
    # Odd rounds: killed while the receiver has not answered yet.
    rounds = [ok_then_hold, silent, ok_then_hold, silent]
    held_after_2xx: list[str] = []
    workers = []
    try:
        for number, behaviour in enumerate(rounds):
            receiver.release = threading.Event()
            receiver.behaviour = behaviour
            before = len(receiver.received)
            worker = Worker(database, tmp_path / f"worker-{number}.log")
            workers.append(worker)
            receiver.wait_for(lambda b=before: len(receiver.received) > b, timeout_s=30)
            if behaviour is ok_then_hold:
                receiver.wait_for(lambda: bool(receiver.holding), timeout_s=10)
                held_after_2xx.extend(receiver.holding)
            worker.kill()
            receiver.holding.clear()
            receiver.release.set()

        receiver.behaviour = OK
        last = Worker(database, tmp_path / "worker-last.log")
        workers.append(last)
        wait_until(lambda: undelivered(database) == 0, timeout_s=60, what="all delivered")
        assert last.stop() == 0
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.kill()

    arrivals = _check_arrivals(receiver, seeded, secret)
    assert held_after_2xx, "no kill landed between a 2xx and its record"
    for webhook_id in held_after_2xx:
        assert arrivals[webhook_id] >= 2, "a 2xx the worker never recorded was not sent again"


class CountingConcurrency:
    """Answers 200 after a short pause, counting how many deliveries of each id overlap."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: Counter[str] = Counter()
        self.most_at_once: Counter[str] = Counter()

    def __call__(self, handler: BaseHTTPRequestHandler, item: Received, rx: Receiver) -> None:
        with self.lock:
            self.in_flight[item.webhook_id] += 1
            self.most_at_once[item.webhook_id] = max(
                self.most_at_once[item.webhook_id], self.in_flight[item.webhook_id]
            )
        time.sleep(0.1)  # widen the window in which a second sender would overlap
        with self.lock:
            self.in_flight[item.webhook_id] -= 1
        OK(handler, item, rx)


def test_two_workers_never_send_one_message_at_the_same_time(
    database: str, receiver: Receiver, tmp_path: Path
) -> None:
    secret = seed_destination(database, url=receiver.url)
    counting = CountingConcurrency()
    receiver.behaviour = counting
    workers = [Worker(database, tmp_path / f"worker-{n}.log") for n in range(2)]
    try:
        for worker in workers:
            worker.wait_for("relay_started")
        seeded = seed_events(database, referrals=24, events_each=1)
        seeded += seed_events(database, referrals=3, events_each=3)[24:]
        wait_until(lambda: undelivered(database) == 0, timeout_s=60, what="all delivered")
        assert [worker.stop() for worker in workers] == [0, 0]
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.kill()

    _check_arrivals(receiver, seeded, secret)
    assert max(counting.most_at_once.values()) == 1, "two deliveries of one message overlapped"
    delivered_by = [worker.count("webhook_delivered") for worker in workers]
    assert sum(delivered_by) == len(seeded) and min(delivered_by) > 0, delivered_by
    for worker in workers:
        logged = worker.log.read_text()
        assert "9434765919" not in logged and "Testpatient" not in logged
        assert "token=" not in logged
        assert "Traceback" not in logged
        assert all(json.loads(line) for line in logged.splitlines() if line.startswith("{"))


class Outage:
    """Answers 503 (with ``Retry-After: 1`` while ``retry_after``) until ``up``, then 200;
    remembers which ids were accepted, and how often, and each 503 sent with Retry-After."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.retry_after = True
        self.accepted: Counter[str] = Counter()
        self.told_to_wait: list[Received] = []

    def __call__(self, handler: BaseHTTPRequestHandler, item: Received, rx: Receiver) -> None:
        if self.up.is_set():
            self.accepted[item.webhook_id] += 1
            OK(handler, item, rx)
        elif self.retry_after:
            self.told_to_wait.append(item)
            respond(503, {"Retry-After": "1"})(handler, item, rx)
        else:
            respond(503)(handler, item, rx)


BASE_S, CAP_S = 0.4, 1.6
BACKOFF = {
    "EXHALE_DELIVERY__BACKOFF_BASE_S": str(BASE_S),
    "EXHALE_DELIVERY__BACKOFF_CAP_S": str(CAP_S),
}


def _failed_attempts(worker: Worker) -> dict[int, list[tuple[dt.datetime, int | None]]]:
    """Per message, when each failed attempt was recorded and the receiver's status (None: no
    answer), in order."""
    attempts: dict[int, list[tuple[dt.datetime, int | None]]] = defaultdict(list)
    for event in worker.events():
        if event.get("event") == "webhook_attempt_failed":
            at = dt.datetime.fromisoformat(event["timestamp"])
            attempts[event["outbox_id"]].append((at, event["http_status"]))
    return attempts


def test_a_receiver_outage_is_retried_with_backoff_and_each_event_accepted_once(
    database: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens here yet: connection refused
    outage = Outage()
    secret = seed_destination(database, url=f"http://127.0.0.1:{port}/webhooks")
    seeded = seed_events(database, referrals=4, events_each=2)
    worker = Worker(database, tmp_path / "worker.log", **BACKOFF)
    try:
        wait_until(lambda: len(_failed_attempts(worker)) == 4, timeout_s=30, what="refused")
        time.sleep(1.0)  # the messages back off while nothing listens
        with Receiver(port=port).running() as receiver:
            receiver.behaviour = outage
            receiver.wait_for(lambda: len(receiver.received) >= 8, timeout_s=30)
            outage.retry_after = False
            time.sleep(1.0)
            outage.up.set()
            wait_until(lambda: undelivered(database) == 0, timeout_s=60, what="all delivered")
        assert worker.stop() == 0
    finally:
        if worker.process.poll() is None:
            worker.kill()

    _check_arrivals(receiver, seeded, secret)
    assert set(outage.accepted) == {s.webhook_id for s in seeded}
    assert set(outage.accepted.values()) == {1}, "an event was accepted twice"
    for message_id, failures in _failed_attempts(worker).items():
        assert len(failures) >= 3, f"message {message_id}: {failures}"
        for number, (earlier, later) in enumerate(itertools.pairwise(failures), start=1):
            gap_s = (later[0] - earlier[0]).total_seconds()
            # Jittered exponential backoff never waits less than half its ceiling (less a
            # little: the log line comes just after the retry time is computed).
            assert gap_s >= min(CAP_S, BASE_S * 2 ** (number - 1)) / 2 - 0.1, failures
    assert any(f[0][1] is None for f in _failed_attempts(worker).values()), "none was refused"
    assert outage.told_to_wait, "no 503 carried Retry-After"
    for told in outage.told_to_wait:
        again = [r.arrived for r in receiver.received if r.webhook_id == told.webhook_id]
        later = [arrived for arrived in again if arrived > told.arrived]
        assert later and later[0] - told.arrived >= 0.99, "Retry-After: 1 was not honoured"
