"""Real `exhale worker` processes and committed data, for tests that kill and race workers."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import select

from app.db import make_engine, make_sessionmaker, session_scope
from referral.models import OutboxMessage
from tests import factories
from tests.helpers import REPO, exhale_env, free_port

# Short timeouts so a test sees leases expire in seconds; the lease still outlasts two attempts.
FAST_DELIVERY = {
    "EXHALE_DELIVERY__LEASE_S": "2",
    "EXHALE_DELIVERY__ATTEMPT_DEADLINE_S": "1",
    "EXHALE_DELIVERY__CONNECT_TIMEOUT_S": "0.5",
    "EXHALE_DELIVERY__READ_TIMEOUT_S": "0.5",
    "EXHALE_DELIVERY__POLL_INTERVAL_S": "0.1",
    "EXHALE_DELIVERY__LISTEN_POLL_INTERVAL_S": "0.2",
    "EXHALE_DELIVERY__BACKOFF_BASE_S": "0.1",
    "EXHALE_DELIVERY__BACKOFF_CAP_S": "1",
    "EXHALE_DELIVERY__CONCURRENCY": "4",
    "EXHALE_WORKER__LOCK_RETRY_S": "0.2",
    "EXHALE_LOG_JSON": "true",
}
# Every scheduled job every 0.3 s, so a test sees dozens of runs and any overlap between workers.
FAST_JOBS = '{"prune_web_sessions": 0.3, "webhook_backlog_report": 0.3}'


class Process:
    """`python -m app.cli <command>`, its JSON log in a file (a pipe could fill and stall it)."""

    command: tuple[str, ...] = ("worker",)

    def __init__(self, database_url: str, log: Path, *args: str, **env: str) -> None:
        self.log = log
        self._stderr: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *self.command, *args],
            cwd=REPO,
            env=exhale_env(database_url, **{**FAST_DELIVERY, **env}),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def count(self, event: str) -> int:
        return sum(1 for item in self.events() if item.get("event") == event)

    def wait_for(self, event: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count(event) == 0:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker never logged {event!r}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._stderr.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()
        return self.process.returncode


class Worker(Process):
    """`exhale worker`: the scheduled jobs (when leader) and the webhook relay."""


class WebServer(Process):
    """`exhale serve` on a free loopback port; ``url`` once it answers."""

    command = ("serve",)

    def __init__(self, database_url: str, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(database_url, log, "--port", str(self.port), **env)

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"web server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("web server did not answer /healthz")
            time.sleep(0.1)


@dataclass(frozen=True)
class Seeded:
    message_id: int
    referral_id: int
    webhook_id: str


def seed_epr_client(database_url: str, *, code: str = "SSS01") -> str:
    """A unit referring to service ``code`` (made unless it exists) and an EPR's API key for the
    unit; returns the key. Committed."""
    from app.orgs.models import Organisation

    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service = session.scalars(
                select(Organisation).where(Organisation.code == code)
            ).one_or_none() or factories.make_service(session, code=code)
            unit = factories.make_unit(session, service=service)
            _client, secret = factories.make_api_client(session, role="epr", organisation=unit)
            return secret
    finally:
        engine.dispose()


def seed_destination(database_url: str, *, url: str, code: str = "SSS01") -> str:
    """A service with a destination at ``url``; returns its signing secret. Committed."""
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service = factories.make_service(session, code=code)
            return factories.make_destination(session, service=service, url=url)
    finally:
        engine.dispose()


def seed_events(
    database_url: str, *, referrals: int, events_each: int, code: str = "SSS01"
) -> list[Seeded]:
    """``referrals`` referrals with ``events_each`` events each, committed in one transaction."""
    from app.orgs import service as orgs

    kinds = ["referral.created", "referral.updated", "referral.closed"]
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service = orgs.get_by_code_or_raise(session, code)
            unit = factories.make_unit(session, service=service)
            for _ in range(referrals):
                pregnancy = factories.make_pregnancy(session, unit=unit)
                referral = factories.make_referral(session, pregnancy=pregnancy, service=service)
                for index in range(events_each):
                    factories.make_outbox_message(
                        session, referral=referral, event_type=kinds[index % 3]
                    )
        with session_scope(make_sessionmaker(engine)) as session:
            rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
            return [Seeded(m.id, m.referral_id or 0, m.webhook_id) for m in rows]
    finally:
        engine.dispose()


def undelivered(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            return len(
                session.scalars(
                    select(OutboxMessage.id).where(OutboxMessage.status != "delivered")
                ).all()
            )
    finally:
        engine.dispose()


@dataclass(frozen=True)
class JobRun:
    job: str
    worker: int
    term: int  # which of the worker's leadership terms: its count of `worker_started` so far
    started: dt.datetime
    ended: dt.datetime


def job_runs(workers: list[Worker]) -> list[JobRun]:
    """Every scheduled job run the workers logged, in the order they started, each with the
    leadership term it ran in (a worker's log is written in order, and a term's runs all finish
    before its scheduler shuts down and the worker can start another)."""
    runs = []
    for number, worker in enumerate(workers):
        term = 0
        for event in worker.events():
            if event.get("event") == "worker_started":
                term += 1
            elif event.get("event") == "job_ran":
                started = dt.datetime.fromisoformat(event["started_at"])
                ended = started + dt.timedelta(milliseconds=event["duration_ms"])
                runs.append(JobRun(event["job"], number, term, started, ended))
    return sorted(runs, key=lambda run: run.started)


def assert_one_leader_at_a_time(runs: list[JobRun]) -> None:
    """No job ran twice at once, and leadership only ever moved on: once another leadership term
    has run a job, no earlier term runs one again, and no two terms' runs overlap in time.

    The unit is a term (one acquisition of the lock), not a worker. A standby that takes the lock
    when the leader stops is a legitimate handover, and may hand leadership back to a worker that
    led before: a restart moves it from worker A to B, then the test's own SIGTERM to B lets the
    still-running A lead again for a moment ([A, B, A] by worker). That is a new term of A's,
    started after B released the lock. What must never happen is a worker running a job in a term
    whose lock it has lost (a stale scheduler after a restart): that run keeps its old term
    number and so splits that term around another's, or overlaps another term in time."""
    for job in {run.job for run in runs}:
        mine = [run for run in runs if run.job == job]
        for before, after in itertools.pairwise(mine):
            assert after.started >= before.ended, f"{job} ran twice at once: {before}, {after}"
    terms = [
        (key, list(group))
        for key, group in itertools.groupby(runs, key=lambda run: (run.worker, run.term))
    ]
    leaders = [key for key, _ in terms]
    assert len(leaders) == len(set(leaders)), (
        f"a worker ran a job in a term it had lost: {leaders} as (worker, term)"
    )
    for (before, earlier), (after, later) in itertools.pairwise(terms):
        last_end = max(run.ended for run in earlier)
        assert last_end <= later[0].started, (
            f"terms {before} and {after} (worker, term) ran jobs at once: "
            f"{before} until {last_end}, {after} from {later[0].started}"
        )


def wait_until(condition: Any, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.1)
