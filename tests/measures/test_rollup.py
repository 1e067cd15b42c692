"""Stored measures: after a refresh they are read, not recounted, and every kind of write keeps
the answer exactly what a recount says."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import migrate
from app.config import MeasuresSettings
from app.db import make_engine, make_sessionmaker, session_scope
from app.measures import queries, rollup
from app.measures.models import MeasureMark, MeasureMonth
from app.measures.months import Month
from app.measures.sql import Scope
from app.orgs.models import Organisation
from tests.measures.test_measures import at, build
from tests.measures.world import World, day

TODAY = dt.date(2026, 11, 26)
SCOPE = Scope(None, Month(2026, 2), Month(2026, 5))
SETTINGS = MeasuresSettings()


def _exact(session: Session, settings: MeasuresSettings = SETTINGS) -> None:
    """What a reader is told is what a recount of the records says."""
    told = rollup.counts(session, scope=SCOPE, settings=settings)
    assert told == queries.compute(session, scope=SCOPE, settings=settings)


def _marks(session: Session) -> set[tuple[int, str | None]]:
    rollup.write_marks(session)  # as the commit would
    rows = session.execute(select(MeasureMark.unit_id, MeasureMark.month))
    return {(row.unit_id, row.month) for row in rows}


@pytest.fixture
def world(session: Session) -> World:
    world = build(session)
    _exact(session)  # before any refresh: everything counted live
    done = rollup.refresh(session, SETTINGS, today=TODAY)
    assert done.pairs >= rollup.KEPT_MONTHS
    assert _marks(session) == set()
    return world


def test_after_a_refresh_the_answer_is_read_without_recounting(
    session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = queries.compute(session, scope=SCOPE, settings=SETTINGS)
    assert expected  # the world has records to count

    def no_recount(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("recounted although nothing changed")

    monkeypatch.setattr(queries, "compute", no_recount)
    assert rollup.counts(session, scope=SCOPE, settings=SETTINGS) == expected


def _new_smoker_at_booking(w: World) -> None:
    """A woman booked on 31 March says she smokes on 1 April: March's booking count changes."""
    g = w.woman()
    w.contact(g, "booking", "2026-03-31")
    w.session.flush()
    w.reading(g, "2026-04-01", co_ppm=9, status="smoker")


def _a_booking_without_a_test(w: World) -> None:
    w.contact(w.woman(), "booking", "2026-03-25")


def _a_birth(w: World) -> None:
    pregnancy = w.woman()
    w.session.flush()
    pregnancy.born_on = day("2026-04-10")
    pregnancy.smoking_status_at_delivery = "smoker"
    w.session.flush()


def _a_postnatal_status(w: World) -> None:
    w.postnatal_status(w.woman(born_on="2026-03-01", satod="smoker"), "2026-03-20", "smoker")


def _a_quit_date_set(w: World) -> None:
    referral = w.referral(w.woman(), at("2026-03-03T09:00"))
    w.session.flush()
    referral.quit_date = day("2026-04-20")
    w.session.flush()


def _an_outcome(w: World) -> None:
    referral = w.referral(w.woman(), at("2026-03-03T09:00"), quit_date="2026-03-24")
    w.event(referral, "outcome_check", stage="28_day", result="co_confirmed_quit", co_ppm=1)


def _an_outcome_on_a_referral_read_back(w: World) -> None:
    """The referral is not held by the session: its quit date is read from the database."""
    referral = w.referral(w.woman(), at("2026-02-03T09:00"), quit_date="2026-04-24")
    rollup.refresh(w.session, SETTINGS, today=TODAY)  # the referral's own marks are gone
    w.session.expire_all()
    w.event(referral, "outcome_check", stage="28_day", result="co_confirmed_quit", co_ppm=1)


def _training(w: World) -> None:
    w.training(w.staff(), "co_monitoring", "2026-03-02")


def _feedback(w: World) -> None:
    w.feedback(5, "2026-05-02")


WRITES: dict[str, tuple[Callable[[World], None], set[str | None]]] = {
    "a test on 1 April for a 31 March booking": (_new_smoker_at_booking, {"2026-03", "2026-04"}),
    "a booking without a test": (_a_booking_without_a_test, {"2026-03", "2026-04"}),
    "a birth": (_a_birth, {"2026-04"}),
    "a postnatal status": (_a_postnatal_status, {"2026-03"}),
    "a quit date set on a referral": (_a_quit_date_set, {"2026-03", "2026-04"}),
    "a quit outcome": (_an_outcome, {"2026-03"}),
    "a quit outcome on a referral read back": (
        _an_outcome_on_a_referral_read_back,
        {"2026-04"},
    ),
    "staff training": (_training, {None}),
    "feedback": (_feedback, {"2026-05"}),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_every_kind_of_write_marks_its_months_and_the_answer_stays_exact(
    session: Session, world: World, write: str
) -> None:
    before = queries.compute(session, scope=SCOPE, settings=SETTINGS)
    change, months = WRITES[write]
    change(world)
    assert queries.compute(session, scope=SCOPE, settings=SETTINGS) != before  # it counts
    assert _marks(session) == {(world.unit.id, month) for month in months}
    _exact(session)
    rollup.refresh(session, SETTINGS, today=TODAY)
    assert _marks(session) == set()
    _exact(session)


def test_changed_settings_are_counted_under_the_new_settings_until_refreshed(
    session: Session, world: World
) -> None:
    stricter = MeasuresSettings(elevated_co_ppm=8, status_window_days=1)
    assert queries.compute(session, scope=SCOPE, settings=stricter) != queries.compute(
        session, scope=SCOPE, settings=SETTINGS
    )
    _exact(session, stricter)
    rollup.refresh(session, stricter, today=TODAY)
    states = session.scalars(select(MeasureMonth.fingerprint).distinct()).all()
    assert states == [rollup.fingerprint(stricter)]
    _exact(session, stricter)
    _exact(session)  # and the old settings, now stale, are counted live again


def test_one_unit_is_read_apart_from_the_others(session: Session, world: World) -> None:
    scope = Scope([world.unit.id], Month(2026, 3), Month(2026, 3))
    _new_smoker_at_booking(world)
    told = rollup.counts(session, scope=scope, settings=SETTINGS)
    assert told == queries.compute(session, scope=scope, settings=SETTINGS)
    assert {key[0] for key in told} == {world.unit.id}


def test_a_bulk_load_marks_every_month_of_its_units(session: Session, world: World) -> None:
    rollup.mark_units(session, [world.unit.id])
    assert _marks(session) == {(world.unit.id, None)}
    done = rollup.refresh(session, SETTINGS, today=TODAY)
    assert done.pairs == rollup.KEPT_MONTHS
    _exact(session)


@pytest.mark.postgres
def test_a_write_committed_during_a_refresh_keeps_its_mark(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh removes only the marks it read; a write it did not see is recounted later."""
    migrate.upgrade(fresh_database_url)
    engine = make_engine(fresh_database_url)
    factory = make_sessionmaker(engine)
    try:
        with session_scope(factory) as session:
            world = World(session)
            unit_id = world.unit.id
            world.contact(world.woman(), "booking", "2026-03-02")
        recount = queries.compute
        writer_done = threading.Event()

        def write_meanwhile() -> None:
            with session_scope(factory) as session:
                later = World(session, unit=session.get(Organisation, unit_id))
                later.contact(later.woman(), "booking", "2026-03-09")
            writer_done.set()

        def recount_after_a_write(*args: Any, **kwargs: Any) -> Any:
            if not writer_done.is_set():
                thread = threading.Thread(target=write_meanwhile)
                thread.start()
                thread.join(timeout=30)
            return recount(*args, **kwargs)

        monkeypatch.setattr(queries, "compute", recount_after_a_write)
        with session_scope(factory) as session:
            rollup.refresh(session, SETTINGS, today=TODAY)
        assert writer_done.is_set()
        monkeypatch.setattr(queries, "compute", recount)
        with session_scope(factory) as session:
            left = session.scalars(
                select(func.count()).select_from(MeasureMark).where(MeasureMark.unit_id == unit_id)
            ).one()
            assert left >= 1
            _exact(session)
    finally:
        engine.dispose()


def test_a_record_dated_in_a_month_no_one_can_ask_for_is_saved_and_refreshed(
    session: Session, world: World
) -> None:
    world.feedback(5, "0291-05-09")
    assert _marks(session) == {(world.unit.id, "0291-05")}
    rollup.refresh(session, SETTINGS, today=TODAY)
    assert _marks(session) == set()
    _exact(session)
