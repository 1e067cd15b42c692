"""The worker's side of delivery: the relay loop (in every worker) and a backlog report (leader).

On PostgreSQL a listener thread holds its own connection with ``LISTEN exhale_outbox`` and wakes
the relay when a transaction that wrote a sendable message commits, so delivery starts at once;
the relay also polls every ``listen_poll_interval_s`` for retries coming due. If the listener's
connection is lost the relay polls every ``poll_interval_s`` until it is back. On SQLite the
relay polls every ``poll_interval_s`` (0.5 s).
"""

from __future__ import annotations

import datetime as dt
import threading

import psycopg
from psycopg import sql
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import libpq_conninfo, session_scope, utcnow
from app.logs import get_logger
from referral.delivery.admin import count_undelivered
from referral.delivery.relay import Relay
from referral.delivery.safety import DestinationPolicy
from referral.delivery.service import NOTIFY_CHANNEL, reduce_delivered_payloads

log = get_logger(__name__)


class NotifyListener(threading.Thread):
    """Sets ``wake`` on every notification on ``NOTIFY_CHANNEL``; reconnects when cut off."""

    def __init__(self, settings: Settings, *, wake: threading.Event, stop: threading.Event) -> None:
        super().__init__(name="outbox-listener", daemon=True)
        self._conninfo = libpq_conninfo(settings.database_url)
        self._connect_timeout_s = settings.database_connect_timeout_s
        self._wake = wake
        self._stopping = stop
        self.listening = False

    def run(self) -> None:
        retry_s = 1.0
        while not self._stopping.is_set():
            try:
                self._listen()
                retry_s = 1.0
            except psycopg.Error as error:
                log.warning("outbox_listen_lost", error_type=type(error).__name__, retry_s=retry_s)
            finally:
                self.listening = False
            self._stopping.wait(retry_s)
            retry_s = min(retry_s * 2, 30.0)

    def _listen(self) -> None:
        with psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout_s
        ) as connection:
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
            self.listening = True
            log.info("outbox_listening", channel=NOTIFY_CHANNEL)
            self._wake.set()  # catch up on whatever committed before LISTEN took effect
            while not self._stopping.is_set():
                for _notification in connection.notifies(timeout=0.5):
                    self._wake.set()


def relay_loop(factory: sessionmaker[Session], settings: Settings, stop: threading.Event) -> None:
    """Deliver webhooks until ``stop`` is set. Runs in every worker, leader or standby: claims
    keep two relays from sending one message at once."""
    policy = DestinationPolicy.from_settings(settings)
    relay = Relay(factory, settings.delivery, allow_private=policy.allow_private)
    wake = threading.Event()
    listener = None
    if not settings.is_sqlite:
        listener = NotifyListener(settings, wake=wake, stop=stop)
        listener.start()

    def poll_interval_s() -> float:
        if listener is not None and listener.listening:
            return settings.delivery.listen_poll_interval_s
        return settings.delivery.poll_interval_s

    try:
        relay.run(stop, wake=wake, poll_interval_s=poll_interval_s)
    finally:
        if listener is not None:
            listener.join(timeout=5)


def delivery_backlog_job(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """Log how many messages each service has pending and failed (a warning when any failed)."""
    with session_scope(factory) as session:
        counts = count_undelivered(session)
    totals = {"pending": 0, "failed": 0}
    for (_code, status), count in counts.items():
        totals[status] = totals.get(status, 0) + count
    by_service = {f"{code}:{status}": count for (code, status), count in sorted(counts.items())}
    if totals["failed"]:
        log.warning("webhook_backlog", **totals, by_service=by_service)
    elif totals["pending"]:
        log.info("webhook_backlog", **totals, by_service=by_service)
    return totals


def reduce_payloads_job(factory: sessionmaker[Session], settings: Settings) -> int:
    """Cut every message delivered more than ``delivered_payload_days`` ago to its thin form, in
    batches of one transaction each. Returns how many."""
    now = utcnow()
    before = now - dt.timedelta(days=settings.delivery.delivered_payload_days)
    total = 0
    while True:
        with session_scope(factory) as session:
            done = reduce_delivered_payloads(session, delivered_before=before, now=now)
        total += done
        if done == 0:
            break
    if total:
        log.info("delivered_payloads_reduced", count=total, older_than_days=(now - before).days)
    return total
