"""The worker: one scheduler leader at a time, clean stop on SIGTERM."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app import migrate
from app.config import ConfigError, Settings, WorkerSettings
from app.db import make_engine, make_sessionmaker, session_scope
from app.identity.jobs import prune_sessions_job
from app.identity.models import WebSession
from app.identity.service import SessionPolicy, digest, start_web_session
from app.measures import rollup
from app.measures.jobs import refresh_measures_job
from app.measures.models import MeasureMark
from app.worker import Job, LeaderLock, _run_job, job_intervals
from tests import factories
from tests.app.access_world import build_side
from tests.helpers import REPO, exhale_env


def test_only_one_worker_holds_the_leader_lock(settings: Settings, engine: Engine) -> None:
    first = LeaderLock(settings, engine)
    second = LeaderLock(settings, engine)
    assert first.try_acquire()
    try:
        assert not second.try_acquire()
    finally:
        first.release()
    assert second.try_acquire()
    second.release()


def _start_worker(database_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=REPO,
        env=exhale_env(database_url, EXHALE_WORKER__LOCK_RETRY_S="0.2"),
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(process: subprocess.Popen[str], needle: str, timeout_s: float = 30) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if needle in line:
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"worker never logged {needle!r}")


def test_a_second_worker_stands_by_and_takes_over(engine: Engine, database_url: str) -> None:
    leader = _start_worker(database_url)
    standby = None
    try:
        _wait_for_line(leader, "worker_started")
        standby = _start_worker(database_url)
        _wait_for_line(standby, "worker_standing_by")

        leader.send_signal(signal.SIGTERM)
        assert leader.wait(timeout=30) == 0
        _wait_for_line(standby, "worker_started")

        standby.send_signal(signal.SIGTERM)
        assert standby.wait(timeout=30) == 0
    finally:
        for process in (leader, standby):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_the_session_job_ends_idle_and_expired_sessions_only(
    session: Session, settings: Settings
) -> None:
    side = build_side(session)
    now = dt.datetime.now(dt.UTC)
    policy = SessionPolicy(idle=dt.timedelta(minutes=30), maximum=dt.timedelta(hours=12))
    fresh = start_web_session(session, user=side.users["midwife"], now=now, policy=policy)
    idle = start_web_session(
        session, user=side.users["lead"], now=now - dt.timedelta(hours=1), policy=policy
    )
    expired = start_web_session(
        session, user=side.users["admin"], now=now - dt.timedelta(hours=13), policy=policy
    )
    factory = sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint")
    assert prune_sessions_job(factory, settings) == 2
    session.expire_all()
    assert session.get(WebSession, digest(fresh)) is not None
    assert session.get(WebSession, digest(idle)) is None
    assert session.get(WebSession, digest(expired)) is None


def test_the_measures_job_brings_the_stored_counts_up_to_date(
    fresh_database_url: str,
) -> None:
    settings = Settings(database_url=fresh_database_url)
    migrate.upgrade(fresh_database_url)
    engine = make_engine(fresh_database_url)
    try:
        factory = make_sessionmaker(engine)
        with session_scope(factory) as session:
            unit = factories.make_unit(session, service=factories.make_service(session))
            rollup.mark_units(session, [unit.id])
        assert refresh_measures_job(factory, settings) == rollup.KEPT_MONTHS
        assert refresh_measures_job(factory, settings) == 0  # nothing written since
        with session_scope(factory) as session:
            assert session.scalars(select(func.count()).select_from(MeasureMark)).one() == 0
    finally:
        engine.dispose()


def test_job_intervals_can_be_set_by_name_and_an_unknown_name_is_refused(
    settings: Settings,
) -> None:
    faster = settings.model_copy(
        update={"worker": WorkerSettings(job_intervals_s={"prune_web_sessions": 30})}
    )
    assert job_intervals(faster)["prune_web_sessions"] == 30
    typo = settings.model_copy(update={"worker": WorkerSettings(job_intervals_s={"prune": 30})})
    with pytest.raises(ConfigError, match="names no job: prune; the jobs are"):
        job_intervals(typo)


@pytest.mark.postgres
def test_a_job_still_running_under_a_lost_leader_is_skipped_by_the_new_one(
    settings: Settings, engine: Engine
) -> None:
    """A leader whose session ended mid-job runs that job to its end; the new leader must not
    start the same job meanwhile, and runs it as usual once it has finished."""
    ran: list[str] = []
    job = Job("probe", interval_s=60, run=lambda *_: ran.append("new leader"))
    new_leader = LeaderLock(settings, engine)
    assert new_leader.try_acquire()
    try:
        with LeaderLock(settings, engine).job_running("probe") as old_leader_running:
            assert old_leader_running
            _run_job(job, new_leader, make_sessionmaker(engine), settings)
            assert ran == []
        _run_job(job, new_leader, make_sessionmaker(engine), settings)
        assert ran == ["new leader"]
    finally:
        new_leader.release()


@pytest.mark.postgres
def test_a_job_runs_under_its_own_lock_and_gives_it_up_when_it_fails(
    settings: Settings, engine: Engine
) -> None:
    def fails(*_: object) -> None:
        raise RuntimeError("the job broke")

    leader = LeaderLock(settings, engine)
    assert leader.try_acquire()
    try:
        _run_job(
            Job("probe", interval_s=60, run=fails), leader, make_sessionmaker(engine), settings
        )
        with LeaderLock(settings, engine).job_running("probe") as got:
            assert got  # the failed run left no lock behind
    finally:
        leader.release()


def test_delivered_payloads_are_reduced_hourly(settings: Settings) -> None:
    assert job_intervals(settings)["reduce_delivered_payloads"] == 3600
