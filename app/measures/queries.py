"""The measures in SQL: one aggregate query per family of measures, on SQLite and PostgreSQL.

Every query counts in the database and returns one row per unit and month (never a row per
record), so a national year costs a few scans, not a Python loop. Each query has two levels: an
inner one with one row per woman (or referral, or staff member) and month, holding 0/1 flags,
and an outer one summing the flags per unit and month. The rules are in docs/measures.md. This
module has the women's measures; ``queries_services`` those of the staff and the stop-smoking
service.

Dates: a contact's ``occurred_on`` is the local (England) date of the appointment, and every
reading's contact is the one on the reading's local date, so the day of a reading is its
contact's ``occurred_on``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text, union_all
from sqlalchemy.orm import Session, aliased

from app.config import MeasuresSettings
from app.measures import queries_services as services
from app.measures.sql import (
    Count,
    Key,
    Rows,
    Scope,
    add_days,
    any_,
    flag,
    month_label,
    total,
)
from app.orgs.models import Organisation, OrganisationKind
from app.pregnancies.models import Contact, ContactKind, PostnatalStatus, Pregnancy
from app.readings.models import Reading, ReadingOutcome, SmokingStatus

__all__ = ["Count", "Key", "Scope", "compute", "unit_rows"]


def compute(
    session: Session,
    *,
    scope: Scope,
    settings: MeasuresSettings,
    codes: Collection[str] | None = None,
) -> dict[Key, Count]:
    """The measures (all, or those in ``codes``) for the scope, one query per family of them.

    Only a (unit, month, measure) with any record appears; a missing key means no data.
    """
    found: dict[Key, Count] = {}
    _tune(session, settings)
    for family, produces in _FAMILIES:
        if codes is not None and not set(produces) & set(codes):
            continue
        for key, count in family(session, scope, settings):
            if codes is None or key[2] in codes:
                found[key] = count
    return found


def _tune(session: Session, settings: MeasuresSettings) -> None:
    """PostgreSQL, for this transaction: room to hash a national year in memory, and no JIT.

    The defaults (4 MB) spill the per-woman aggregates to disk; JIT compilation costs about
    half a second per query here and saves less. Both end with the transaction.
    """
    if session.connection().dialect.name != "postgresql":
        return
    session.execute(text("SET LOCAL jit = off"))
    session.execute(text(f"SET LOCAL work_mem = '{int(settings.postgres_work_mem_mb)}MB'"))


def unit_rows(session: Session, unit_ids: Sequence[int] | None) -> list[tuple[int, str, str]]:
    """(id, code, name) of the units in scope, by code."""
    statement = select(Organisation.id, Organisation.code, Organisation.name).where(
        Organisation.kind == OrganisationKind.maternity_unit.value
    )
    if unit_ids is not None:
        statement = statement.where(Organisation.id.in_(list(unit_ids)))
    return [(row.id, row.code, row.name) for row in session.execute(statement.order_by("code"))]


# --- booking and 36 weeks: status and CO test within +/- N days of the appointment ---------------

_KNOWN_STATUSES = (SmokingStatus.smoker, SmokingStatus.ex_smoker, SmokingStatus.non_smoker)


def _smoker(status: Any, co_ppm: Any | None, threshold: int) -> ColumnElement[bool]:
    """Self-reported smoker, or CO at or above the threshold (MSDS smoker at booking)."""
    said = status == SmokingStatus.smoker.value
    return said if co_ppm is None else or_(said, co_ppm >= threshold)


def _known(status: Any, co_ppm: Any | None, threshold: int) -> ColumnElement[bool]:
    """A status she gave (not unknown), or a CO reading that shows she smokes."""
    said = status.in_([s.value for s in _KNOWN_STATUSES])
    return said if co_ppm is None else or_(said, co_ppm >= threshold)


def _appointments(session: Session, scope: Scope, settings: MeasuresSettings) -> Rows:
    """Booking and 36 weeks: each appointment's tests within the window, then per unit and month.

    Her contacts within ``status_window_days`` of the appointment (the appointment's own
    included, so an appointment without a test still counts) and the tests filed under them.
    """
    window, threshold = settings.status_window_days, settings.elevated_co_ppm
    appointment, near = aliased(Contact), aliased(Contact)
    per_woman = (
        select(
            appointment.pregnancy_id,
            appointment.kind,
            month_label(appointment.occurred_on).label("month"),
            any_(_smoker(Reading.smoking_status, Reading.co_ppm, threshold), "smoker"),
            any_(_known(Reading.smoking_status, Reading.co_ppm, threshold), "known"),
            any_(Reading.outcome == ReadingOutcome.measured.value, "tested"),
        )
        .select_from(appointment)
        .join(
            near,
            and_(
                near.pregnancy_id == appointment.pregnancy_id,
                near.occurred_on.between(
                    add_days(appointment.occurred_on, -window),
                    add_days(appointment.occurred_on, window),
                ),
            ),
        )
        .outerjoin(Reading, Reading.contact_id == near.id)
        .where(
            appointment.kind.in_([ContactKind.booking.value, ContactKind.weeks_36.value]),
            scope.dates(appointment.occurred_on),
            scope.pregnancies(appointment.pregnancy_id),
        )
        .group_by(
            appointment.id,
            appointment.pregnancy_id,
            appointment.kind,
            appointment.occurred_on,
        )
        .subquery("per_woman")
    )
    w = per_woman.c
    statement = (
        select(
            Pregnancy.unit_id,
            w.kind,
            w.month,
            func.count().label("women"),
            total(w.smoker).label("smokers"),
            total(w.known).label("known"),
            total(w.tested).label("tested"),
        )
        .join(Pregnancy, Pregnancy.id == w.pregnancy_id)
        .group_by(Pregnancy.unit_id, w.kind, w.month)
    )
    for row in session.execute(statement):
        at = "booking" if row.kind == ContactKind.booking.value else "36_weeks"
        yield (
            (row.unit_id, row.month, f"smoking_at_{at}"),
            Count(row.smokers, row.known, row.women - row.known),
        )
        yield (row.unit_id, row.month, f"co_test_at_{at}"), Count(row.tested, row.women)


# --- smoking at the time of delivery ------------------------------------------------------------


def _at_delivery(session: Session, scope: Scope, _settings: MeasuresSettings) -> Rows:
    status = Pregnancy.smoking_status_at_delivery
    birth = (
        select(
            Pregnancy.unit_id,
            month_label(Pregnancy.born_on).label("month"),
            flag(status == SmokingStatus.smoker.value).label("smoker"),
            flag(status.in_([SmokingStatus.smoker.value, SmokingStatus.non_smoker.value])).label(
                "known"
            ),
        )
        .where(scope.dates(Pregnancy.born_on), scope.units(Pregnancy.unit_id))
        .subquery("birth")
    )
    b = birth.c
    statement = select(
        b.unit_id,
        b.month,
        func.count().label("women"),
        total(b.smoker).label("smokers"),
        total(b.known).label("known"),
    ).group_by(b.unit_id, b.month)
    for row in session.execute(statement):
        yield (
            (row.unit_id, row.month, "smoking_at_delivery"),
            Count(row.smokers, row.known, row.women - row.known),
        )


# --- tests that show she smokes: very brief advice and referral ---------------------------------


def _tests(session: Session, scope: Scope, settings: MeasuresSettings) -> Rows:
    threshold = settings.elevated_co_ppm
    tested = aliased(Contact)
    positive = Reading.co_ppm >= threshold
    identified = _smoker(Reading.smoking_status, Reading.co_ppm, threshold)
    referred = Reading.referral_id.is_not(None)
    per_woman = (
        select(
            Pregnancy.unit_id,
            Reading.pregnancy_id,
            month_label(tested.occurred_on).label("month"),
            any_(positive, "positive"),
            any_(and_(positive, Reading.very_brief_advice_given.is_(True)), "advised"),
            any_(and_(positive, referred), "positive_referred"),
            any_(identified, "identified"),
            any_(and_(identified, referred), "identified_referred"),
        )
        .join(tested, tested.id == Reading.contact_id)
        .join(Pregnancy, Pregnancy.id == Reading.pregnancy_id)
        .where(scope.dates(tested.occurred_on), scope.units(Pregnancy.unit_id), identified)
        .group_by(Pregnancy.unit_id, Reading.pregnancy_id, month_label(tested.occurred_on))
        .subquery("per_woman")
    )
    w = per_woman.c
    statement = select(
        w.unit_id,
        w.month,
        total(w.positive).label("positive"),
        total(w.advised).label("advised"),
        total(w.positive_referred).label("positive_referred"),
        total(w.identified).label("identified"),
        total(w.identified_referred).label("identified_referred"),
    ).group_by(w.unit_id, w.month)
    for row in session.execute(statement):
        key = (row.unit_id, row.month)
        yield (*key, "brief_advice_when_positive"), Count(row.advised, row.positive)
        yield (*key, "elevated_co_referred"), Count(row.positive_referred, row.positive)
        yield (*key, "smokers_referred"), Count(row.identified_referred, row.identified)


# --- after the birth: postnatal statuses and postnatal tests ------------------------------------


def _after_birth(session: Session, scope: Scope, settings: MeasuresSettings) -> Rows:
    threshold = settings.elevated_co_ppm
    postnatal = aliased(Contact)
    said = select(
        PostnatalStatus.pregnancy_id,
        PostnatalStatus.recorded_on.label("on"),
        flag(_smoker(PostnatalStatus.smoking_status, None, threshold)).label("smoker"),
        flag(_known(PostnatalStatus.smoking_status, None, threshold)).label("known"),
    ).where(scope.dates(PostnatalStatus.recorded_on))
    tested = (
        select(
            Reading.pregnancy_id,
            postnatal.occurred_on.label("on"),
            flag(_smoker(Reading.smoking_status, Reading.co_ppm, threshold)).label("smoker"),
            flag(_known(Reading.smoking_status, Reading.co_ppm, threshold)).label("known"),
        )
        .join(postnatal, postnatal.id == Reading.contact_id)
        .where(postnatal.kind == ContactKind.postnatal.value, scope.dates(postnatal.occurred_on))
    )
    record = union_all(said, tested).subquery("record")
    r = record.c
    per_woman = (
        select(
            Pregnancy.unit_id,
            month_label(r.on).label("month"),
            func.max(r.smoker).label("smoker"),
            func.max(r.known).label("known"),
        )
        .join(Pregnancy, Pregnancy.id == r.pregnancy_id)
        .where(scope.units(Pregnancy.unit_id))
        .group_by(Pregnancy.unit_id, r.pregnancy_id, month_label(r.on))
        .subquery("per_woman")
    )
    w = per_woman.c
    statement = select(
        w.unit_id,
        w.month,
        func.count().label("women"),
        total(w.smoker).label("smokers"),
        total(w.known).label("known"),
    ).group_by(w.unit_id, w.month)
    for row in session.execute(statement):
        yield (
            (row.unit_id, row.month, "smoking_after_birth"),
            Count(row.smokers, row.known, row.women - row.known),
        )


_FAMILIES: tuple[
    tuple[Callable[[Session, Scope, MeasuresSettings], Rows], tuple[str, ...]], ...
] = (
    (
        _appointments,
        ("smoking_at_booking", "smoking_at_36_weeks", "co_test_at_booking", "co_test_at_36_weeks"),
    ),
    (_at_delivery, ("smoking_at_delivery",)),
    (_tests, ("brief_advice_when_positive", "elevated_co_referred", "smokers_referred")),
    (_after_birth, ("smoking_after_birth",)),
    (services.staff, ("staff_trained_co_monitoring", "staff_trained_brief_advice")),
    (services.referred, ("quit_date_set",)),
    (services.quit_attempts, (*services.QUIT_MEASURES.values(), "nrt_prescribed")),
    (services.feedback, ("feedback_positive",)),
)
