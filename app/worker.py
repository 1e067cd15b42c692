"""The worker: hosts the APScheduler 3 scheduler for background jobs.

Only one worker process runs the scheduled jobs at a time: it holds a leader lock (a PostgreSQL
advisory lock, or a file lock beside the SQLite database). A second worker stands by and takes over
when the first stops, so replicas never run a job twice. The advisory lock lives as long as the
leader's database session: when PostgreSQL restarts or fails over, the session and the lock are
gone, so the leader checks its session every ``lock_retry_s`` and, when it has lost it, stops its
scheduler and contends for the lock again like any standby. A job it had started by then runs
on to its end; each job holds a lock of its own while it runs (``LeaderLock.job_running``), so
the new leader skips that job until it has finished rather than run it at the same time.

Loops (``LOOPS``) are different: every worker runs them from its start, leader or standby, each
in its own thread. The webhook relay is one: it claims its work row by row, so several relays
share the outbox without sending one message twice at once.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from app.config import ConfigError, Settings, sqlite_path
from app.db import make_engine, make_sessionmaker, utcnow
from app.identity.jobs import prune_sessions_job
from app.logs import get_logger
from app.measures.jobs import refresh_measures_job
from app.oauth.jobs import prune_oauth_job
from referral.delivery.jobs import delivery_backlog_job, reduce_payloads_job, relay_loop

log = get_logger("exhale.worker")

# Advisory lock key: the ASCII of "exhale" as a bigint, recognisable in pg_locks.
LEADER_LOCK_KEY = int.from_bytes(b"exhale", "big")
# A running job's lock: (this key space, the CRC-32 of its name), a key space apart from the first.
JOB_LOCK_SPACE = int.from_bytes(b"job", "big")


@dataclass(frozen=True)
class Job:
    """A scheduled job: ``run(sessionmaker, settings)`` every ``interval_s`` seconds."""

    name: str
    interval_s: float
    run: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)


JOBS: list[Job] = [
    Job("prune_web_sessions", interval_s=600, run=prune_sessions_job),
    Job("prune_oauth_tokens", interval_s=600, run=prune_oauth_job),
    Job("webhook_backlog_report", interval_s=300, run=delivery_backlog_job),
    Job("refresh_measures", interval_s=60, run=refresh_measures_job),
    Job("reduce_delivered_payloads", interval_s=3600, run=reduce_payloads_job),
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
        self._guard = threading.Lock()  # the scheduler's threads check the lock too

    def try_acquire(self) -> bool:
        """True once this process holds the lock; False while another does or the database is
        unreachable (the caller retries)."""
        try:
            return self._try_acquire()
        except SQLAlchemyError as error:
            log.warning("worker_lock_unavailable", error_type=type(error).__name__)
            return False

    def still_held(self) -> bool:
        """Whether the session holding the lock is alive (a file lock cannot be lost)."""
        with self._guard:
            return self._check()

    def _check(self) -> bool:
        if self._connection is None:
            return self._file is not None
        try:
            self._connection.execute(text("SELECT 1")).scalar_one()
            self._connection.commit()
        except SQLAlchemyError:
            # The session ended and the lock with it. SQLAlchemy would reconnect this Connection
            # on next use, into a session that holds nothing: drop it instead.
            self._connection.invalidate()
            self._connection = None
            return False
        return True

    def _try_acquire(self) -> bool:
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
        try:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK_KEY}
            ).scalar_one()
            connection.commit()
        except SQLAlchemyError:
            connection.invalidate()
            raise
        if got:
            self._connection = connection
            return True
        connection.close()
        return False

    @contextmanager
    def job_running(self, name: str) -> Iterator[bool]:
        """Hold job ``name``'s own lock while it runs: True if this process got it, False while
        another worker is still running that job.

        The leader lock alone leaves a gap: a leader whose session ended mid-job runs on until
        the job ends, while a new leader may start the same job. This lock is held on a
        connection of its own for the job's whole run, so the new leader skips it. A file lock
        (SQLite) cannot be lost, so there it is always True.
        """
        if self._path is not None:
            yield True
            return
        key = {"space": JOB_LOCK_SPACE, "job": zlib.crc32(name.encode()) - 2**31}
        connection = self._engine.connect()
        try:
            got = connection.execute(_TRY_JOB_LOCK, key).scalar_one()
            connection.commit()
            yield bool(got)
        finally:
            connection.invalidate()  # ending the session releases the lock, whatever happened
            connection.close()

    def release(self) -> None:
        with self._guard:
            self._release()

    def _release(self) -> None:
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
            except SQLAlchemyError:
                pass  # the session is gone, and the lock went with it
            finally:
                self._connection.invalidate()  # never hand a lock-holding connection to the pool
                self._connection = None


_TRY_JOB_LOCK = text("SELECT pg_try_advisory_lock(:space, :job)")


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
    intervals = job_intervals(settings)
    engine = make_engine(
        settings.database_url, connect_timeout_s=settings.database_connect_timeout_s
    )
    sessionmaker = make_sessionmaker(engine)
    lock = LeaderLock(settings, engine)
    loops_stop = threading.Event()
    loops = _start_loops(sessionmaker, settings, loops_stop)
    try:
        while _wait_for_leadership(lock, settings, stop):
            _lead(lock, sessionmaker, settings, intervals, stop)
    finally:
        loops_stop.set()
        for thread in loops:
            thread.join(timeout=LOOP_STOP_TIMEOUT_S)
        lock.release()
        engine.dispose()


def job_intervals(settings: Settings) -> dict[str, float]:
    """Each job's interval, with ``EXHALE_WORKER__JOB_INTERVALS_S`` applied."""
    names = {job.name for job in JOBS}
    unknown = sorted(set(settings.worker.job_intervals_s) - names)
    if unknown:
        raise ConfigError(
            f"EXHALE_WORKER__JOB_INTERVALS_S names no job: {', '.join(unknown)}; "
            f"the jobs are {', '.join(sorted(names))}"
        )
    return {job.name: settings.worker.job_intervals_s.get(job.name, job.interval_s) for job in JOBS}


def _wait_for_leadership(lock: LeaderLock, settings: Settings, stop: threading.Event) -> bool:
    """Block until this worker holds the leader lock (True) or is told to stop (False)."""
    announced = False
    while not stop.is_set() and not lock.try_acquire():
        if not announced:
            log.info("worker_standing_by", reason="another worker holds the scheduler lock")
            announced = True
        stop.wait(settings.worker.lock_retry_s)
    return not stop.is_set()


def _lead(
    lock: LeaderLock,
    sessionmaker: Any,
    settings: Settings,
    intervals: dict[str, float],
    stop: threading.Event,
) -> None:
    """Run the scheduled jobs until ``stop``, or until the leader lock is lost."""
    scheduler = BackgroundScheduler(timezone="UTC")
    for job in JOBS:
        scheduler.add_job(
            _run_job,
            "interval",
            seconds=intervals[job.name],
            args=[job, lock, sessionmaker, settings],
            id=job.name,
            name=job.name,  # APScheduler's warnings name the job, not the function running it
            max_instances=1,
            coalesce=True,
            **job.options,
        )
    scheduler.start()
    log.info("worker_started", pid=os.getpid(), jobs=[job.name for job in JOBS])
    try:
        while not stop.wait(settings.worker.lock_retry_s):
            if not lock.still_held():
                log.warning("worker_leadership_lost", reason="the database session ended")
                break
    finally:
        scheduler.shutdown(wait=True)
        lock.release()
    log.info("worker_stopped" if stop.is_set() else "worker_standing_down")


def _run_job(job: Job, lock: LeaderLock, sessionmaker: Any, settings: Settings) -> None:
    """Run one job if this worker still leads: a leader whose session ended (and whose lock
    another worker may now hold) runs nothing more, though it has not noticed yet."""
    if not lock.still_held():
        log.warning("job_skipped", job=job.name, reason="the leader lock was lost")
        return
    started_at = utcnow()
    started = time.monotonic()
    try:
        with lock.job_running(job.name) as got:
            if not got:
                log.warning("job_skipped", job=job.name, reason="another worker is running it")
                return
            job.run(sessionmaker, settings)
    except Exception as error:
        log.error("job_failed", job=job.name, error_type=type(error).__name__, exc_info=error)
        return
    log.info(
        "job_ran",
        job=job.name,
        started_at=started_at.isoformat(),
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )


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
