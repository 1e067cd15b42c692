"""The worker process runs the relay: a committed message reaches the receiver without waiting
for a poll (PostgreSQL: LISTEN/NOTIFY), and SIGTERM stops it cleanly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from app import migrate
from app.config import DeliverySettings
from app.db import make_engine, make_sessionmaker
from referral.delivery.relay import Relay
from tests.conftest import on_postgres
from tests.faults.processes import Worker, seed_destination, seed_events, undelivered, wait_until
from tests.referral.delivery.receiver import Receiver


def test_the_worker_delivers_a_committed_message_at_once(
    fresh_database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    migrate.upgrade(fresh_database_url)
    secret = seed_destination(fresh_database_url, url=receiver.url)
    # On PostgreSQL both polls are a minute apart: only a notification can be this quick.
    poll_s = "60" if on_postgres() else "0.2"
    worker = Worker(
        fresh_database_url,
        tmp_path / "worker.log",
        EXHALE_DELIVERY__POLL_INTERVAL_S=poll_s,
        EXHALE_DELIVERY__LISTEN_POLL_INTERVAL_S="60",
    )
    try:
        worker.wait_for("outbox_listening" if on_postgres() else "relay_started")
        time.sleep(0.3)  # past the relay's first look, so the next one needs a wake-up
        (seeded,) = seed_events(fresh_database_url, referrals=1, events_each=1)
        committed = time.monotonic()
        receiver.wait_for(lambda: len(receiver.received) == 1, timeout_s=10)
        assert receiver.received[0].arrived - committed < 5
        assert receiver.received[0].webhook_id == seeded.webhook_id
        receiver.received[0].verify(secret)
        wait_until(lambda: undelivered(fresh_database_url) == 0, timeout_s=10, what="recorded")
    finally:
        assert worker.stop() == 0
    assert worker.count("relay_stopped") == 1
    assert "Traceback" not in worker.log.read_text()


class CountingEvent(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def test_a_busy_relay_waits_for_a_free_slot_instead_of_spinning(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    seed_destination(fresh_database_url, url="https://receiver.example.nhs.uk/hook")
    seeded = seed_events(fresh_database_url, referrals=3, events_each=1)

    def slow_receiver(request: httpx.Request) -> httpx.Response:
        time.sleep(0.3)
        return httpx.Response(200)

    engine = make_engine(fresh_database_url)
    settings = DeliverySettings(concurrency=1, poll_interval_s=0.05)
    relay = Relay(
        make_sessionmaker(engine),
        settings,
        allow_private=True,
        transport_factory=lambda _deadline: httpx.MockTransport(slow_receiver),
    )
    stop, wake = threading.Event(), CountingEvent()
    loop = threading.Thread(
        target=relay.run, args=(stop,), kwargs={"wake": wake, "poll_interval_s": lambda: 0.05}
    )
    loop.start()
    try:
        wait_until(lambda: undelivered(fresh_database_url) == 0, timeout_s=10, what="delivered")
    finally:
        stop.set()
        loop.join(timeout=10)
        engine.dispose()
    assert not loop.is_alive()
    assert len(seeded) == 3
    # About one wait per poll and per finished send; a loop that spins makes thousands.
    assert wake.waits < 100, wake.waits
