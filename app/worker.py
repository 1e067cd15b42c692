"""The worker: hosts the APScheduler 3 scheduler for background jobs.

Only one worker process runs the scheduled jobs at a time: it holds a leader lock (a PostgreSQL
advisory lock, or a file lock beside the SQLite database). A second worker stands by and takes over
when the first stops, so replicas never run a job twice.

Loops (``LOOPS``) are different: every worker runs them from its start, leader or standby, each
in its own thread. The webhook relay is one: it claims its work row by row, so several relays
share the outbox without sending one message twice at once.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from app.config import Settings, sqlite_path
from app.db import make_engine, make_sessionmaker
from app.identity.jobs import prune_sessions_job
from app.logs import get_logger
from app.measures.jobs import refresh_measures_job
from app.oauth.jobs import prune_oauth_job
from referral.delivery.jobs import delivery_backlog_job, relay_loop

log = get_logger("exhale.worker")

# Advisory lock key: the ASCII of "exhale" as a bigint, recognisable in pg_locks.
LEADER_LOCK_KEY = int.from_bytes(b"exhale", "big")


@dataclass(frozen=True)
class Job:
    """A scheduled job: ``run(sessionmaker, settings)`` every ``interval_s`` seconds.

    ``interval_s`` is a number, or a function of the settings when it is configurable.
    """

    name: str
    interval_s: float | Callable[[Settings], float]
    run: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)


JOBS: list[Job] = [
    Job("prune_web_sessions", interval_s=600, run=prune_sessions_job),
    Job("prune_oauth_tokens", interval_s=600, run=prune_oauth_job),
    Job("webhook_backlog_report", interval_s=300, run=delivery_backlog_job),
    Job(
        "refresh_measures",
        interval_s=lambda settings: settings.measures.refresh_interval_s,
        run=refresh_measures_job,
    ),
]


@dataclass(frozen=True)
class Loop:
    """Runs in every worker: ``run(sessionmaker, settings, stop)`` in a thread until ``stop``."""

    name: str
    run: Callable[..., Any]


LOOPS: list[Loop] = [
    Loop("webhook_relay", run=relay_loop),
]
LOOP_STOP_TIMEOUT_S = 60  # a relay lets its sends in flight finish (each has a deadline)


class LeaderLock:
    """Exclusive for one worker at a time, released when the holder stops or dies."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._engine = engine
        self._path = sqlite_path(settings)
        self._connection: Connection | None = None
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._path is not None:
            lock_path = Path(f"{self._path}.worker.lock")
            handle = lock_path.open("a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._file = handle
            return True
        connection = self._engine.connect()
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}
        ).scalar_one()
        connection.commit()
        if got:
            self._connection = connection
            return True
        connection.close()
        return False

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK_KEY}
                )
                self._connection.commit()
            finally:
                self._connection.invalidate()  # never hand a lock-holding connection to the pool
                self._connection = None


def _install_signal_handlers(stop: threading.Event) -> None:
    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("worker_stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def run_worker(settings: Settings, *, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT (or ``stop`` is set), then shut the scheduler down cleanly."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        _install_signal_handlers(stop)
    engine = make_engine(
        settings.database_url, connect_timeout_s=settings.database_connect_timeout_s
    )
    sessionmaker = make_sessionmaker(engine)
    lock = LeaderLock(settings, engine)
    loops_stop = threading.Event()
    loops = _start_loops(sessionmaker, settings, loops_stop)
    try:
        announced = False
        while not stop.is_set() and not lock.try_acquire():
            if not announced:
                log.info("worker_standing_by", reason="another worker holds the scheduler lock")
                announced = True
            stop.wait(settings.worker.lock_retry_s)
        if stop.is_set():
            return
        scheduler = BackgroundScheduler(timezone="UTC")
        for job in JOBS:
            scheduler.add_job(
                job.run,
                "interval",
                seconds=job.interval_s(settings) if callable(job.interval_s) else job.interval_s,
                args=[sessionmaker, settings],
                id=job.name,
                max_instances=1,
                coalesce=True,
                **job.options,
            )
        scheduler.start()
        log.info("worker_started", pid=os.getpid(), jobs=[job.name for job in JOBS])
        stop.wait()
        scheduler.shutdown(wait=True)
        log.info("worker_stopped")
    finally:
        loops_stop.set()
        for thread in loops:
            thread.join(timeout=LOOP_STOP_TIMEOUT_S)
        lock.release()
        engine.dispose()


def _start_loops(
    sessionmaker: Any, settings: Settings, stop: threading.Event
) -> list[threading.Thread]:
    threads = []
    for loop in LOOPS:
        thread = threading.Thread(
            target=loop.run, args=(sessionmaker, settings, stop), name=loop.name, daemon=True
        )
        thread.start()
        threads.append(thread)
    return threads
