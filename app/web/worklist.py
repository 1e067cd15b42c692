"""The midwife's worklist: tests due this week, tests missed, and women handed back by advisors.

Each pregnancy or referral listed is audited as a search, as the API's lists are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Exists, and_, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from app.audit import service as audit
from app.identity.principal import Principal
from app.pregnancies import service as pregnancies
from app.pregnancies.models import Contact, ContactKind, Pregnancy
from referral.models import Referral
from referral.queue import HANDED_BACK
from referral.queue import RECORD_TYPE as REFERRAL_RECORD

BOOKING_BY_DAYS = 13 * 7 + 6
"""A booking test not done by 13+6 weeks is missed (the booking appointment is usually at 8-12
weeks, DOMAIN.md)."""
WINDOW_36_WEEKS = (
    pregnancies.THIRTY_SIX_WEEK_WINDOW.start,
    pregnancies.THIRTY_SIX_WEEK_WINDOW.stop - 1,
)
"""35+0 to 37+6 weeks, in days of gestation: the 36-week appointment."""
LIST_LIMIT = 200
HANDED_BACK_DAYS = 56


@dataclass(frozen=True)
class DueTest:
    pregnancy: Pregnancy
    contact: str  # "booking" or "36_weeks"
    window_starts_on: dt.date | None
    window_ends_on: dt.date
    gestation_days: int


@dataclass(frozen=True)
class Worklist:
    due: list[DueTest]
    missed: list[DueTest]


def week_of(today: dt.date) -> tuple[dt.date, dt.date]:
    """Monday to Sunday of the week ``today`` falls in."""
    monday = today - dt.timedelta(days=today.weekday())
    return monday, monday + dt.timedelta(days=6)


def _window_36(pregnancy: Pregnancy) -> tuple[dt.date, dt.date]:
    starts = pregnancies.starts_on(pregnancy)
    first, last = WINDOW_36_WEEKS
    return starts + dt.timedelta(days=first), starts + dt.timedelta(days=last)


def _has(kind: ContactKind) -> Exists:
    return exists().where(Contact.pregnancy_id == Pregnancy.id, Contact.kind == kind.value)


def _candidates(session: Session, unit_id: int, today: dt.date) -> list[Pregnancy]:
    """Current pregnancies (no birth, not past 44 weeks) missing a booking or 36-week test."""
    _monday, sunday = week_of(today)
    no_booking = ~_has(ContactKind.booking)
    no_36_weeks = ~_has(ContactKind.weeks_36)
    window_opened = Pregnancy.estimated_due_date <= sunday + dt.timedelta(
        days=pregnancies.FULL_TERM_DAYS - WINDOW_36_WEEKS[0]
    )
    statement = (
        select(Pregnancy)
        .where(
            Pregnancy.unit_id == unit_id,
            Pregnancy.born_on.is_(None),
            Pregnancy.estimated_due_date
            >= today - dt.timedelta(days=pregnancies.ENDS_AFTER_DUE_DAYS),
            Pregnancy.estimated_due_date <= today + dt.timedelta(days=pregnancies.FULL_TERM_DAYS),
            or_(no_booking, and_(no_36_weeks, window_opened)),
        )
        .options(selectinload(Pregnancy.contacts))
        .order_by(Pregnancy.estimated_due_date.desc(), Pregnancy.id)
        .limit(LIST_LIMIT)
    )
    return list(session.scalars(statement))


def tests_due(session: Session, *, principal: Principal, today: dt.date) -> Worklist:
    """Booking tests not yet done, and 36-week tests whose window falls in this week or passed."""
    assert principal.organisation_id is not None
    monday, sunday = week_of(today)
    due: list[DueTest] = []
    missed: list[DueTest] = []
    for pregnancy in _candidates(session, principal.organisation_id, today):
        kinds = {contact.kind for contact in pregnancy.contacts}
        days = pregnancies.gestation_days(pregnancy, today)
        if ContactKind.booking not in kinds:
            by = pregnancies.starts_on(pregnancy) + dt.timedelta(days=BOOKING_BY_DAYS)
            (due if by >= today else missed).append(
                DueTest(pregnancy, ContactKind.booking.value, None, by, days)
            )
        if ContactKind.weeks_36 not in kinds:
            opens, closes = _window_36(pregnancy)
            test = DueTest(pregnancy, ContactKind.weeks_36.value, opens, closes, days)
            if closes < today:
                missed.append(test)
            elif opens <= sunday and closes >= monday:
                due.append(test)
    listed = {test.pregnancy.id for test in due + missed}
    for pregnancy_id in sorted(listed):
        audit.record(
            session,
            actor=principal,
            action=audit.Action.search,
            record_type=pregnancies.RECORD_TYPE,
            record_id=pregnancy_id,
            subject_pregnancy_id=pregnancy_id,
        )
    due.sort(key=lambda test: (test.window_ends_on, test.pregnancy.id))
    missed.sort(key=lambda test: (test.window_ends_on, test.pregnancy.id))
    return Worklist(due=due, missed=missed)


def handed_back(
    session: Session, *, principal: Principal, now: dt.datetime
) -> list[tuple[Referral, Pregnancy]]:
    """Referrals at the unit closed as uncontactable or not engaged in the last 8 weeks."""
    since = now - dt.timedelta(days=HANDED_BACK_DAYS)
    rows = session.execute(
        select(Referral, Pregnancy)
        .join(Pregnancy, Pregnancy.id == Referral.pregnancy_id)
        .where(
            Pregnancy.unit_id == principal.organisation_id,
            Referral.status.in_(HANDED_BACK),
            Referral.closed_at >= since,
        )
        .order_by(Referral.closed_at.desc(), Referral.id.desc())
        .limit(LIST_LIMIT)
    ).all()
    for referral, pregnancy in rows:
        audit.record(
            session,
            actor=principal,
            action=audit.Action.search,
            record_type=REFERRAL_RECORD,
            record_id=referral.id,
            subject_pregnancy_id=pregnancy.id,
        )
    return [(referral, pregnancy) for referral, pregnancy in rows]
