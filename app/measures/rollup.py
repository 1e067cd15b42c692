"""Measures kept per unit and month, so that a national year of measures is a read, not a recount.

Every write that can change a measure (a reading, a contact, a birth, a postnatal status, a
referral or its events, the staff register, feedback) leaves a *mark* naming the unit and month
it touches, in its own transaction: a flush listener on every session notes what each flush
touched, so no write path can forget, and the marks are written in one statement just before the
commit (or before the session itself reads the measures). The worker's refresh
(:func:`refresh`) recomputes the marked pairs with the queries in ``app.measures.queries``,
stores their counts with a fingerprint of the settings they were computed under, and removes the
marks it saw. Reading measures (:func:`counts`) takes the stored counts of each (unit, month)
that is unmarked and computed under the current settings, and computes the rest live: an answer
is always what a recount would say.

Marks are appended, never updated, so concurrent writers never wait on each other. A refresh
takes a lock (a PostgreSQL advisory lock; SQLite's writer lock), reads the marks, computes in
later statements (which see every write whose mark it read) and deletes by id only the marks it
read: a mark committed meanwhile stays for the next refresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, event, insert, inspect, or_, select, text
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.attributes import get_history, instance_state
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE
from sqlalchemy.orm.util import identity_key

from app.clock import LONDON
from app.config import MAX_STATUS_WINDOW_DAYS, MeasuresSettings
from app.measures import queries
from app.measures.models import (
    MeasureMark,
    MeasureMonth,
    ServiceFeedback,
    StaffMember,
    StaffTraining,
)
from app.measures.months import Month, months_between
from app.measures.sql import Count, Key, Scope
from app.pregnancies.models import Contact, PostnatalStatus, Pregnancy
from app.readings.models import Reading
from referral.models import Referral, ReferralEvent

# Bump when a query in ``queries`` or ``queries_services`` changes what it counts: every stored
# count then reads as stale and is recomputed.
DEFINITIONS_VERSION = 1
KEPT_MONTHS = 60  # the refresh keeps the 5 years to this month; older months are counted live
REFRESH_LOCK_KEY = int.from_bytes(b"measures", "big") >> 1  # fits a signed bigint
_PENDING = "exhale.measure_marks_pending"

Pair = tuple[int, str]  # unit id, month label


def fingerprint(settings: MeasuresSettings) -> str:
    """What the stored counts depend on besides the records: the counting settings."""
    relevant = {
        "version": DEFINITIONS_VERSION,
        "elevated_co_ppm": settings.elevated_co_ppm,
        "status_window_days": settings.status_window_days,
        "positive_feedback_from": settings.positive_feedback_from,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


# --- reading: stored where fresh, counted live where not ----------------------------------------


def counts(
    session: Session,
    *,
    scope: Scope,
    settings: MeasuresSettings,
    codes: Collection[str] | None = None,
) -> Counted:
    """The measures for the scope, as ``queries.compute`` would count them now."""
    write_marks(session)  # this session's own writes count too
    unit_ids = _unit_ids(session, scope.unit_ids)
    labels = [m.label for m in months_between(scope.first, scope.last)]
    stored = _fresh(session, scope, labels, fingerprint(settings))
    stale = {(u, m) for u in unit_ids for m in labels} - stored.keys()
    live = _live(session, stale, settings, codes, all_units=set(unit_ids))
    return Counted(stored, live, None if codes is None else frozenset(codes))


class Counted(Mapping[Key, Count]):
    """(unit id, month, code) -> Count: the stored counts as they are, the live ones beside them.

    A national year is tens of thousands of counts; each becomes a ``Count`` only when asked for.
    """

    def __init__(
        self,
        stored: dict[Pair, dict[str, list[Any]]],
        live: dict[Key, Count],
        codes: frozenset[str] | None,
    ) -> None:
        self._stored, self._live, self._codes = stored, live, codes

    def get(self, key: Key, default: Any = None) -> Any:
        by_code = self._stored.get((key[0], key[1]))
        if by_code is None:
            return self._live.get(key, default)
        found = by_code.get(key[2]) if self._codes is None or key[2] in self._codes else None
        return default if found is None else Count(*found)

    def month(self, unit_id: int, month: str) -> _MonthCounts:
        """One unit's counts for one month, by code."""
        by_code = self._stored.get((unit_id, month))
        if by_code is not None and self._codes is None:
            return _StoredMonth(by_code)
        return _KeyedMonth(self, unit_id, month)

    def __getitem__(self, key: Key) -> Count:
        found: Count | None = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[Key]:
        for (unit_id, month), by_code in self._stored.items():
            for code in by_code:
                if self._codes is None or code in self._codes:
                    yield unit_id, month, code
        yield from self._live

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _MonthCounts(Protocol):
    def get(self, code: str) -> Count | None: ...


class _StoredMonth:
    def __init__(self, by_code: dict[str, list[Any]]) -> None:
        self._by_code = by_code

    def get(self, code: str) -> Count | None:
        found = self._by_code.get(code)
        return None if found is None else Count(*found)


class _KeyedMonth:
    def __init__(self, counted: Counted, unit_id: int, month: str) -> None:
        self._counted, self._unit_id, self._month = counted, unit_id, month

    def get(self, code: str) -> Count | None:
        found: Count | None = self._counted.get((self._unit_id, self._month, code))
        return found


def _unit_ids(session: Session, chosen: Collection[int] | None) -> list[int]:
    if chosen is not None:
        return list(chosen)
    return [unit_id for unit_id, _code, _name in queries.unit_rows(session, None)]


def _fresh(
    session: Session, scope: Scope, labels: list[str], current: str
) -> dict[Pair, dict[str, list[Any]]]:
    """Stored counts computed under these settings with no mark since, by (unit, month)."""
    kept = select(MeasureMonth.unit_id, MeasureMonth.month, MeasureMonth.counts).where(
        MeasureMonth.month.in_(labels),
        MeasureMonth.fingerprint == current,
        scope.units(MeasureMonth.unit_id),
    )
    fresh = {(unit_id, month): counts for unit_id, month, counts in session.execute(kept).all()}
    if not fresh:
        return fresh
    marked = (
        select(MeasureMark.unit_id, MeasureMark.month)
        .where(
            scope.units(MeasureMark.unit_id),
            or_(MeasureMark.month.in_(labels), MeasureMark.month.is_(None)),
        )
        .distinct()
    )
    for unit_id, month in session.execute(marked).all():
        for label in labels if month is None else [month]:
            fresh.pop((unit_id, label), None)
    return fresh


def _live(
    session: Session,
    pairs: set[Pair],
    settings: MeasuresSettings,
    codes: Collection[str] | None,
    *,
    all_units: set[int],
) -> dict[Key, Count]:
    """Count the pairs now: one computation per run of months sharing the same units."""
    found: dict[Key, Count] = {}
    for unit_ids, first, last in _batches(pairs):
        scope = Scope(None if unit_ids == all_units else sorted(unit_ids), first, last)
        computed = queries.compute(session, scope=scope, settings=settings, codes=codes)
        for key, count in computed.items():
            if (key[0], key[1]) in pairs:
                found[key] = count
    return found


def _batches(pairs: Iterable[Pair]) -> Iterator[tuple[set[int], Month, Month]]:
    """Runs of consecutive months whose units are the same, with those units."""
    units_by_month: dict[str, set[int]] = defaultdict(set)
    for unit_id, label in pairs:
        units_by_month[label].add(unit_id)
    run: tuple[set[int], Month, Month] | None = None
    for month in sorted(Month.parse(label) for label in units_by_month):
        units = units_by_month[month.label]
        if run is not None and run[0] == units and run[2].next() == month:
            run = (units, run[1], month)
            continue
        if run is not None:
            yield run
        run = (units, month, month)
    if run is not None:
        yield run


# --- refreshing: the worker recomputes what was marked ------------------------------------------


def _countable(label: str) -> bool:
    try:
        Month.parse(label)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Refreshed:
    pairs: int
    marks: int


def refresh(session: Session, settings: MeasuresSettings, *, today: dt.date) -> Refreshed:
    """Recompute every marked pair, and every kept month not yet stored under these settings."""
    write_marks(session)
    if session.connection().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK_KEY})
    current = fingerprint(settings)
    unit_ids = _unit_ids(session, None)
    last = Month.of(today)
    kept = [m.label for m in months_between(last.plus(1 - KEPT_MONTHS), last)]
    marks = session.execute(select(MeasureMark.id, MeasureMark.unit_id, MeasureMark.month)).all()
    stale: set[Pair] = set()
    for mark in marks:
        if mark.month is None:
            stale.update((mark.unit_id, label) for label in kept)
        elif _countable(mark.month):  # a record dated where no month can be asked for: none
            stale.add((mark.unit_id, mark.month))
    states = select(MeasureMonth.unit_id, MeasureMonth.month, MeasureMonth.fingerprint)
    stored = {(row.unit_id, row.month): row.fingerprint for row in session.execute(states)}
    stale.update((u, m) for (u, m), value in stored.items() if value != current)
    stale.update((u, m) for u in unit_ids for m in kept if (u, m) not in stored)
    found = _live(session, stale, settings, None, all_units=set(unit_ids))
    _store(session, stale, found, current)
    ids = [mark.id for mark in marks]
    for start in range(0, len(ids), 10_000):
        session.execute(delete(MeasureMark).where(MeasureMark.id.in_(ids[start : start + 10_000])))
    return Refreshed(pairs=len(stale), marks=len(ids))


def _store(session: Session, pairs: set[Pair], found: dict[Key, Count], current: str) -> None:
    by_month: dict[str, list[int]] = defaultdict(list)
    for unit_id, label in pairs:
        by_month[label].append(unit_id)
    for label, unit_ids in by_month.items():
        session.execute(
            delete(MeasureMonth).where(
                MeasureMonth.month == label, MeasureMonth.unit_id.in_(unit_ids)
            )
        )
    counts: dict[Pair, dict[str, list[int | None]]] = {pair: {} for pair in pairs}
    for (unit_id, month, code), c in found.items():
        counts[(unit_id, month)][code] = [c.numerator, c.denominator, c.unknown]
    computed_at = dt.datetime.now(dt.UTC)
    rows = [
        {
            "unit_id": unit_id,
            "month": month,
            "fingerprint": current,
            "counts": by_code,
            "computed_at": computed_at,
        }
        for (unit_id, month), by_code in counts.items()
    ]
    for start in range(0, len(rows), 2_000):
        session.execute(insert(MeasureMonth), rows[start : start + 2_000])


def mark_units(session: Session, unit_ids: Iterable[int]) -> None:
    """Every month of these units needs recounting (after a bulk load that bypassed the ORM)."""
    rows = [{"unit_id": u, "month": None} for u in sorted(set(unit_ids))]
    if rows:
        session.execute(insert(MeasureMark), rows)


# --- marking: a flush listener sees every write through a session -------------------------------

_SPAN = dt.timedelta(days=MAX_STATUS_WINDOW_DAYS)
_INSERT_MARK = insert(MeasureMark)


def _label(day: dt.date) -> str:
    """``YYYY-MM`` of any date (a month the measures can never be asked for is still a label)."""
    return f"{day.year:04d}-{day.month:02d}"


def _around(day: dt.date) -> set[str | None]:
    """The months whose booking or 36-week counts a record on this day can change."""
    labels: set[str | None] = {_label(day)}
    for step in (-_SPAN, _SPAN):
        try:
            labels.add(_label(day + step))
        except OverflowError:  # at the ends of the calendar
            continue
    return labels


def _month(day: dt.date | None) -> set[str | None]:
    return set() if day is None else {_label(day)}


def _values(obj: object, key: str) -> list[Any]:
    """The attribute's value now and any value it had before this flush."""
    state = instance_state(obj)
    if state.key is None:  # inserted by this flush: it had no value before
        value = state.dict.get(key)
        return [] if value is None else [value]
    history = get_history(obj, key, passive=PASSIVE_NO_INITIALIZE)
    values = [*history.added, *history.unchanged, *history.deleted]
    if not values and key in vars(obj):
        values = [vars(obj)[key]]
    return [v for v in values if v is not None]


def _changed(obj: object, keys: Iterable[str]) -> bool:
    state = inspect(obj)
    return any(get_history(obj, k, passive=PASSIVE_NO_INITIALIZE).has_changes() for k in keys) or (
        state.deleted or state.was_deleted
    )


@dataclass
class _Touched:
    pregnancies: defaultdict[int, set[str | None]]
    units: defaultdict[int, set[str | None]]
    referrals: set[int]
    staff: set[int]
    # Units of the pregnancies this flush wrote: a new one is not in the identity map yet.
    unit_of: dict[int, int]


def _reading(obj: Reading, _session: Session, touched: _Touched) -> None:
    for moment in _values(obj, "measured_at"):
        touched.pregnancies[obj.pregnancy_id].update(_around(moment.astimezone(LONDON).date()))


def _contact(obj: Contact, _session: Session, touched: _Touched) -> None:
    for day in _values(obj, "occurred_on"):
        touched.pregnancies[obj.pregnancy_id].update(_around(day))


def _postnatal(obj: PostnatalStatus, _session: Session, touched: _Touched) -> None:
    for day in _values(obj, "recorded_on"):
        touched.pregnancies[obj.pregnancy_id].update(_month(day))


def _pregnancy(obj: Pregnancy, session: Session, touched: _Touched) -> None:
    if obj.id is not None and "unit_id" in vars(obj):
        touched.unit_of[obj.id] = obj.unit_id
    created = obj in session.new
    if obj in session.deleted or (not created and _changed(obj, ("unit_id",))):
        for unit_id in _values(obj, "unit_id"):
            touched.units[unit_id].add(None)
    elif created or _changed(obj, ("born_on", "smoking_status_at_delivery")):
        for day in _values(obj, "born_on"):
            touched.units[obj.unit_id].update(_month(day))


def _referral(obj: Referral, _session: Session, touched: _Touched) -> None:
    for moment in _values(obj, "opened_at"):
        touched.pregnancies[obj.pregnancy_id].update(_month(moment.astimezone(LONDON)))
    for day in _values(obj, "quit_date"):
        touched.pregnancies[obj.pregnancy_id].update(_month(day))


def _event(obj: ReferralEvent, _session: Session, touched: _Touched) -> None:
    touched.referrals.add(obj.referral_id)


def _staff_member(obj: StaffMember, _session: Session, touched: _Touched) -> None:
    for unit_id in _values(obj, "unit_id"):
        touched.units[unit_id].add(None)


def _training(obj: StaffTraining, _session: Session, touched: _Touched) -> None:
    touched.staff.add(obj.staff_member_id)


def _feedback(obj: ServiceFeedback, _session: Session, touched: _Touched) -> None:
    for day in _values(obj, "received_on"):
        touched.units[obj.unit_id].update(_month(day))


_MARKERS: dict[type, Callable[[Any, Session, _Touched], None]] = {
    Reading: _reading,
    Contact: _contact,
    PostnatalStatus: _postnatal,
    Pregnancy: _pregnancy,
    Referral: _referral,
    ReferralEvent: _event,
    StaffMember: _staff_member,
    StaffTraining: _training,
    ServiceFeedback: _feedback,
}


def marks_for_new_reading(
    unit_id: int,
    *,
    measured_at: dt.datetime,
    contact_on: dt.date | None,
    referral_opened_at: dt.datetime | None,
) -> list[dict[str, Any]]:
    """The marks the markers above leave for a reading written without the ORM (in one
    statement by ``app.readings.combined``): its new contact, if any, and the referral it opened,
    if any. A new pregnancy with no birth and a new referral's first event add none."""
    months = _around(measured_at.astimezone(LONDON).date())
    if contact_on is not None:
        months |= _around(contact_on)
    if referral_opened_at is not None:
        months |= _month(referral_opened_at.astimezone(LONDON))
    return [{"unit_id": unit_id, "month": m} for m in sorted(months, key=str)]


def _touched(session: Session) -> _Touched:
    touched = _Touched(defaultdict(set), defaultdict(set), set(), set(), {})
    for obj in (*session.new, *session.dirty, *session.deleted):
        marker = _MARKERS.get(type(obj))
        if marker is not None:
            marker(obj, session, touched)
    return touched


def _resolve(session: Session, touched: _Touched) -> set[tuple[int, str | None]]:
    """(unit id, month or None) for everything touched, looking up what the session lacks."""
    unknown_referrals = []
    for referral_id in touched.referrals:
        referral = session.identity_map.get(identity_key(Referral, referral_id))
        if (
            isinstance(referral, Referral)
            and "pregnancy_id" in vars(referral)
            and not {"pregnancy_id", "quit_date"} & inspect(referral).expired_attributes
        ):  # a quit date never set on a new referral is not in its __dict__: it is None
            quit_date = vars(referral).get("quit_date")
            touched.pregnancies[referral.pregnancy_id].update(_month(quit_date))
        else:
            unknown_referrals.append(referral_id)
    if unknown_referrals:
        found = select(Referral.pregnancy_id, Referral.quit_date).where(
            Referral.id.in_(sorted(unknown_referrals))
        )
        for row in session.connection().execute(found):
            touched.pregnancies[row.pregnancy_id].update(_month(row.quit_date))
    marks = {(unit_id, m) for unit_id, months in touched.units.items() for m in months}
    if touched.staff:
        units = select(StaffMember.unit_id).where(StaffMember.id.in_(sorted(touched.staff)))
        marks.update((unit_id, None) for unit_id in session.connection().scalars(units))
    wanted = {p: months for p, months in touched.pregnancies.items() if months}
    unit_of = dict(touched.unit_of)
    for pregnancy_id in set(wanted) - set(unit_of):
        loaded = session.identity_map.get(identity_key(Pregnancy, pregnancy_id))
        if isinstance(loaded, Pregnancy) and "unit_id" in vars(loaded):
            unit_of[pregnancy_id] = loaded.unit_id
    unknown = sorted(set(wanted) - set(unit_of))
    if unknown:
        looked_up = select(Pregnancy.id, Pregnancy.unit_id).where(Pregnancy.id.in_(unknown))
        unit_of.update((row.id, row.unit_id) for row in session.connection().execute(looked_up))
    if wanted:
        for pregnancy_id, months in wanted.items():
            if pregnancy_id in unit_of:
                marks.update((unit_of[pregnancy_id], m) for m in months)
    return marks


@event.listens_for(Session, "after_flush")
def _mark_after_flush(session: Session, _context: UOWTransaction) -> None:
    """Note what this flush touched; the marks are written once, before the commit."""
    touched = _touched(session)
    if touched.pregnancies or touched.units or touched.referrals or touched.staff:
        session.info.setdefault(_PENDING, set()).update(_resolve(session, touched))


def write_marks(session: Session) -> None:
    """Write the marks of what this session has flushed so far (its commit does this itself)."""
    session.flush()
    pending: set[tuple[int, str | None]] = session.info.pop(_PENDING, set())
    if pending:
        rows = [{"unit_id": u, "month": m} for u, m in sorted(pending, key=str)]
        session.connection().execute(_INSERT_MARK, rows)  # Core: no ORM bulk machinery


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's release: the commit comes later
        write_marks(session)


@event.listens_for(Session, "after_transaction_end")
def _forget_rolled_back(session: Session, transaction: Any) -> None:
    """The session's outermost transaction has ended: a commit wrote the marks, a rollback
    took the writes with it. (A savepoint's rollback keeps them: marking too much is safe.)"""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
