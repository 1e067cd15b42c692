"""A synthetic population for demonstrations and the benchmark. Pure: rows out, no I/O.

Each pregnancy books in the window (uniformly), is tested at booking and at 36 weeks, and gives
birth around her due date. About 12% smoke at booking (England's smoking at booking is about
12%, and at delivery about 7%: NHS Digital); smokers are tested at every appointment, referred
(opt-out), and some opt out, cannot be reached, or set a quit date, get NRT and quit. Nothing
happens after ``today``. Every woman has a synthetic NHS number (the 999 range, valid check
digit) and no name or contact details.

The rows are tuples in the column order of :data:`COLUMNS`, with ids assigned here from
:class:`Ids` so that rows can be bulk-loaded (COPY) without a round trip per row.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from app.clock import LONDON

UTC = dt.UTC
POLICY = "demo"

COLUMNS: dict[str, tuple[str, ...]] = {
    "pregnancy": (
        "id", "unit_id", "nhs_number", "estimated_due_date", "born_on",
        "smoking_status_at_delivery", "created_at", "updated_at",
    ),
    "contact": ("id", "pregnancy_id", "kind", "occurred_on", "gestation_days", "created_at"),
    "referral": (
        "id", "pregnancy_id", "service_id", "status", "reasons", "policy_version", "opened_at",
        "closed_at", "failed_contact_attempts", "quit_date", "last_outcome_stage",
        "last_outcome_result", "version", "updated_at",
    ),
    "co_reading": (
        "id", "pregnancy_id", "contact_id", "measured_at", "outcome", "co_ppm", "smoking_status",
        "very_brief_advice_given", "referral_id", "advice", "policy_version", "created_at",
    ),
    "referral_event": (
        "id", "referral_id", "kind", "data", "actor_type", "actor_name", "occurred_at",
        "created_at",
    ),
    "postnatal_status": ("id", "pregnancy_id", "recorded_on", "smoking_status", "created_at"),
    "service_feedback": (
        "id", "unit_id", "service_id", "referral_id", "rating", "comment", "received_on",
        "created_at",
    ),
    "staff_member": (
        "id", "unit_id", "staff_number", "name", "role", "started_on", "left_on", "created_at",
    ),
    "staff_training": (
        "id", "staff_member_id", "training", "completed_on", "expires_on", "created_at",
    ),
}  # fmt: skip
JSON_COLUMNS = {("referral", "reasons"), ("co_reading", "advice"), ("referral_event", "data")}

Row = tuple[Any, ...]
Batch = dict[str, list[Row]]


@dataclass(frozen=True)
class DemoUnit:
    id: int
    service_id: int
    weight: float = 1.0  # relative number of bookings


@dataclass
class Ids:
    """The next id of each table: one past the largest already stored."""

    next: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 1))

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def nhs_numbers(start: int) -> Iterator[str]:
    """Synthetic NHS numbers (999...) with a valid modulus 11 check digit."""
    body = start
    while True:
        digits = f"999{body:06d}"
        body += 1
        total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        if check == 10:
            continue
        yield digits + str(0 if check == 11 else check)


def generate(
    units: Sequence[DemoUnit],
    *,
    pregnancies: int,
    first_booking: dt.date,
    months: int,
    today: dt.date,
    ids: Ids,
    seed: int = 1,
    batch_size: int = 5000,
) -> Iterator[Batch]:
    """Batches of rows for ``pregnancies`` women booking over ``months`` from ``first_booking``."""
    if not units:
        raise ValueError("give at least one unit")
    rng = random.Random(seed)  # noqa: S311 (synthetic data, not security)
    window = (_add_months(first_booking, months) - first_booking).days
    numbers = nhs_numbers(ids.next["pregnancy"] + seed * 100_000)
    cumulative = list(itertools.accumulate(u.weight for u in units))
    done = 0
    while done < pregnancies:
        batch: Batch = {table: [] for table in COLUMNS}
        for _ in range(min(batch_size, pregnancies - done)):
            unit = units[bisect.bisect(cumulative, rng.random() * cumulative[-1])]
            booked = first_booking + dt.timedelta(days=_between(rng, 0, window))
            if booked <= today:
                _Woman(rng, ids, batch, unit, today).live(booked, next(numbers))
            done += 1
        yield batch


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@lru_cache(maxsize=4096)
def _london_offset(day: dt.date) -> dt.timedelta:
    offset = dt.datetime.combine(day, dt.time(12), LONDON).utcoffset()
    assert offset is not None
    return offset


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    """A clinic time (09:00 to 16:59) on that day in England, as UTC."""
    minutes = 9 * 60 + int(rng.random() * 8 * 60)
    local = dt.datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=UTC)
    return local - _london_offset(day)


def _between(rng: random.Random, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high - 1`` (randrange, without its checks)."""
    return low + int(rng.random() * (high - low))


def _pick(rng: random.Random, choices: dict[Any, float]) -> Any:
    """A key of ``choices``, with the chances given (they add up to 1)."""
    left = rng.random()
    for key, chance in choices.items():
        left -= chance
        if left < 0:
            return key
    return key


@dataclass
class _Referral:
    id: int
    closed_at: dt.datetime | None
    quit_on: dt.date | None = None  # the day she stopped, if she did
    relapsed_on: dt.date | None = None


class _Woman:
    """One pregnancy's records, from booking to after the birth."""

    def __init__(
        self, rng: random.Random, ids: Ids, batch: Batch, unit: DemoUnit, today: dt.date
    ) -> None:
        self.rng, self.ids, self.batch, self.unit, self.today = rng, ids, batch, unit, today
        self.id = ids.take("pregnancy")
        self.smoker = rng.random() < 0.12
        self.referrals: list[_Referral] = []
        self.contacts: dict[tuple[str, dt.date], int] = {}

    def live(self, booked: dt.date, nhs_number: str) -> None:
        rng = self.rng
        gestation = int(rng.triangular(56, 112, 77))
        self.due = booked + dt.timedelta(days=280 - gestation)
        born: dt.date | None = self.due + dt.timedelta(
            days=max(-35, min(14, int(rng.gauss(-3, 9))))
        )
        if born is not None and born > self.today:
            born = None
        self._appointment(booked, "booking")
        if self.smoker:
            day = booked + dt.timedelta(days=28)
            while self._gestation(day) < 245 and (born is None or day < born) and day <= self.today:
                self._appointment(day, "antenatal")
                day += dt.timedelta(days=28)
        week_36 = self.due - dt.timedelta(days=28 + _between(rng, -3, 4))
        if rng.random() < 0.9 and week_36 <= self.today and (born is None or week_36 < born):
            self._appointment(week_36, "36_weeks")
        satod = self._after_birth(born) if born else None
        created = _at(booked, rng)
        self.batch["pregnancy"].append(
            (self.id, self.unit.id, nhs_number, self.due, born, satod, created, created)
        )

    def _gestation(self, day: dt.date) -> int:
        return 280 - (self.due - day).days

    def smoking_on(self, day: dt.date) -> bool:
        if not self.smoker:
            return False
        for referral in self.referrals:
            if referral.quit_on and referral.quit_on <= day:
                return referral.relapsed_on is not None and referral.relapsed_on <= day
        return True

    def _appointment(self, day: dt.date, kind: str) -> None:
        rng = self.rng
        smoking = self.smoking_on(day)
        outcome = _pick(rng, {"measured": 0.86, "declined": 0.08, "no_monitor": 0.06})
        co_ppm = None
        if outcome == "measured":
            co_ppm = _co_ppm(rng, smoking)
        status = _status(rng, smoking, self.smoker)
        identified = status == "smoker" or (co_ppm is not None and co_ppm >= 4)
        referral_id = self._refer(day) if identified else None
        advice = _pick(rng, {True: 0.78, False: 0.08, None: 0.14}) if identified else None
        contact_id = self._contact(kind, day)
        measured_at = _at(day, rng)
        self.batch["co_reading"].append(
            (
                self.ids.take("co_reading"), self.id, contact_id, measured_at, outcome, co_ppm,
                status, advice, referral_id, [], POLICY, measured_at,
            )
        )  # fmt: skip

    def _contact(self, kind: str, day: dt.date) -> int:
        key = (kind, day)
        if key not in self.contacts:
            self.contacts[key] = self.ids.take("contact")
            self.batch["contact"].append(
                (self.contacts[key], self.id, kind, day, self._gestation(day), _at(day, self.rng))
            )
        return self.contacts[key]

    def _refer(self, day: dt.date) -> int | None:
        """The open referral, or a new one (the rules refer again once one has closed)."""
        opened_at = _at(day, self.rng)
        if self.referrals and (
            self.referrals[-1].closed_at is None or self.referrals[-1].closed_at > opened_at
        ):
            return self.referrals[-1].id
        if len(self.referrals) >= 3:
            return None
        referral = _Pathway(self, opened_at).follow()
        self.referrals.append(referral)
        return referral.id

    def _after_birth(self, born: dt.date) -> str:
        rng = self.rng
        smoking = self.smoking_on(born)
        satod = "unknown" if rng.random() < 0.03 else ("smoker" if smoking else "non_smoker")
        recorded = born + dt.timedelta(days=_between(rng, 7, 29))
        if recorded <= self.today and rng.random() < 0.6:
            later = smoking or (self.smoker and rng.random() < 0.25)  # relapse after the birth
            status = _pick(rng, {"smoker": 1.0} if later else {"non_smoker": 0.95, "unknown": 0.05})
            self.batch["postnatal_status"].append(
                (self.ids.take("postnatal_status"), self.id, recorded, status, _at(recorded, rng))
            )
        return str(satod)


def _co_ppm(rng: random.Random, smoking: bool) -> int:
    if smoking:
        return max(1, min(90, int(rng.lognormvariate(2.4, 0.6))))
    return min(12, int(rng.expovariate(0.9)))


def _status(rng: random.Random, smoking: bool, ever: bool) -> str:
    if smoking:
        return str(_pick(rng, {"smoker": 0.82, "non_smoker": 0.1, "unknown": 0.08}))
    if ever:
        return str(_pick(rng, {"ex_smoker": 0.9, "unknown": 0.1}))
    return str(_pick(rng, {"non_smoker": 0.76, "ex_smoker": 0.2, "unknown": 0.04}))


class _Pathway:
    """A referral from opening to where it stands today, with its events."""

    def __init__(self, woman: _Woman, opened_at: dt.datetime) -> None:
        self.woman, self.rng = woman, woman.rng
        self.opened_at = opened_at
        self.today_end = dt.datetime.combine(woman.today, dt.time(23, 59), UTC)
        self.referral = _Referral(woman.ids.take("referral"), None)
        self.status, self.failed = "pending", 0
        self.quit_date: dt.date | None = None
        self.stage: str | None = None
        self.result: str | None = None
        self.events: list[Row] = []
        self.last = opened_at

    def follow(self) -> _Referral:
        self._event(0, "created", {"reasons": ["co_elevated"]})
        route = _pick(
            self.rng,
            {"opt_out": 0.16, "uncontactable": 0.2, "not_engaged": 0.08, "engaged": 0.56},
        )
        getattr(self, f"_{route}")()
        self._write()
        return self.referral

    def _event(self, days: float, kind: str, data: dict[str, Any]) -> bool:
        """Record an event ``days`` after the last one, unless that is after today."""
        at = self.last + dt.timedelta(days=days)
        if at > self.today_end:
            return False
        self.last = at
        self.events.append(
            (self.woman.ids.take("referral_event"), self.referral.id, kind, data, "user",
             "demo advisor", at, at)
        )  # fmt: skip
        return True

    def _close(self, status: str) -> None:
        self.status = status
        self.referral.closed_at = self.last

    def _opt_out(self) -> None:
        if self._event(self.rng.uniform(0, 3), "opt_out", {"reason": "does not want support"}):
            self._close("opted_out")

    def _uncontactable(self) -> None:
        for _ in range(3):
            if not self._event(self.rng.uniform(1, 3), "contact_attempt", {"reached": False}):
                return
            self.failed += 1
        self._close("uncontactable")

    def _not_engaged(self) -> None:
        if self._contacted() and self._event(7, "not_engaged", {}):
            self._close("not_engaged")

    def _contacted(self) -> bool:
        if not self._event(self.rng.uniform(0.2, 2), "contact_attempt", {"reached": True}):
            return False
        self.status = "contacted"
        if not self._event(self.rng.uniform(1, 7), "assessment", {}):
            return False
        self.status = "engaged"
        return True

    def _engaged(self) -> None:
        if not self._contacted():
            return
        quit_date = (self.last + dt.timedelta(days=_between(self.rng, 3, 15))).date()
        if not self._event(1, "quit_date_set", {"quit_date": quit_date.isoformat()}):
            return
        self.status, self.quit_date = "quit_date_set", quit_date
        treatment = _pick(
            self.rng,
            {"nrt_patch": 0.3, "nrt_combination": 0.25, "nrt_short_acting": 0.1,
             "e_cigarette": 0.15, "behavioural_support": 0.2},
        )  # fmt: skip
        self._event(0, "treatment_issued", {"treatment": treatment})
        self._outcomes(quit_date)

    def _outcomes(self, quit_date: dt.date) -> None:
        quit_chance = {"28_day": 0.42, "12_week": 0.7, "end_of_pregnancy": 0.85}
        offsets = {"28_day": 28, "12_week": 84, "end_of_pregnancy": 160}
        quitting = True
        for stage, chance in quit_chance.items():
            when = dt.datetime.combine(
                quit_date + dt.timedelta(days=offsets[stage]), dt.time(12), UTC
            )
            if not quitting or when > self.today_end:
                break
            quitting = self.rng.random() < chance
            result = _pick(self.rng, {"co_confirmed_quit": 0.7, "self_reported_quit": 0.3})
            if not quitting:
                result = _pick(self.rng, {"smoking": 0.7, "lost_to_follow_up": 0.3})
            co_ppm = {
                "co_confirmed_quit": _between(self.rng, 1, 7),
                "smoking": _between(self.rng, 10, 30),
            }
            self.last = when
            self._event(
                0, "outcome_check", {"stage": stage, "result": result, "co_ppm": co_ppm.get(result)}
            )
            self.status, self.stage, self.result = f"outcome_{stage}", stage, result
            if stage == "28_day" and quitting:
                self.referral.quit_on = quit_date
            elif quitting is False and self.referral.quit_on:
                self.referral.relapsed_on = when.date()
        if self.stage and not quitting and self._event(1, "close", {}):
            self._close("completed")

    def _write(self) -> None:
        woman = self.woman
        woman.batch["referral"].append(
            (
                self.referral.id, woman.id, woman.unit.service_id, self.status, ["co_elevated"],
                POLICY, self.opened_at, self.referral.closed_at, self.failed, self.quit_date,
                self.stage, self.result, 1, self.last,
            )
        )  # fmt: skip
        woman.batch["referral_event"].extend(self.events)
        if self.quit_date and self.rng.random() < 0.2:
            received = self.quit_date + dt.timedelta(days=30)
            if received <= woman.today:
                rating = _pick(self.rng, {5: 0.45, 4: 0.3, 3: 0.12, 2: 0.08, 1: 0.05})
                woman.batch["service_feedback"].append(
                    (woman.ids.take("service_feedback"), woman.unit.id, woman.unit.service_id,
                     self.referral.id, rating, None, received, _at(received, self.rng))
                )  # fmt: skip


def staff(units: Sequence[DemoUnit], *, today: dt.date, ids: Ids, seed: int = 1) -> Batch:
    """Each unit's training register: 30 to 90 staff, trained once a year, some lapsing."""
    rng = random.Random(seed)  # noqa: S311 (synthetic data, not security)
    batch: Batch = {table: [] for table in COLUMNS}
    created = dt.datetime.combine(today, dt.time(9), UTC)
    for unit in units:
        for number in range(_between(rng, 30, 91)):
            member = ids.take("staff_member")
            started = today - dt.timedelta(days=_between(rng, 30, 3000))
            left = today - dt.timedelta(days=_between(rng, 1, 400)) if rng.random() < 0.08 else None
            role = _pick(
                rng, {"midwife": 0.7, "maternity_support_worker": 0.2, "obstetrician": 0.1}
            )
            batch["staff_member"].append(
                (member, unit.id, f"D{unit.id}-{number:04d}", f"Demo staff {number}", role,
                 started, left, created)
            )  # fmt: skip
            for training, keeps_up in (("co_monitoring", 0.93), ("very_brief_advice", 0.9)):
                done = started + dt.timedelta(days=_between(rng, 0, 120))
                while done <= today and rng.random() < keeps_up:
                    batch["staff_training"].append(
                        (ids.take("staff_training"), member, training, done,
                         done + dt.timedelta(days=365), created)
                    )  # fmt: skip
                    done += dt.timedelta(days=_between(rng, 330, 420))
    return batch
