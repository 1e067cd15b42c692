"""The measures of the staff and the stop-smoking service, in SQL (see ``queries``).

``referral.opened_at`` is a UTC instant: it is placed in a month by comparing it with the
instants at which England's months begin.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    String,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from app.config import MeasuresSettings
from app.measures.models import ServiceFeedback, StaffMember, StaffTraining, TrainingType
from app.measures.months import months_between
from app.measures.sql import Count, Rows, Scope, any_, flag, month_label, total
from app.pregnancies.models import Pregnancy
from referral.lifecycle import EventKind, OutcomeResult, OutcomeStage
from referral.models import Referral, ReferralEvent

# --- staff in post at the end of each month, and their in-date training ------------------------


def _month_ends(scope: Scope) -> Any:
    rows = [
        select(literal(m.label, String).label("month"), literal(m.last_day, Date).label("ends_on"))
        for m in months_between(scope.first, scope.last)
    ]
    return (union_all(*rows) if len(rows) > 1 else rows[0]).subquery("month_end")


def staff(session: Session, scope: Scope, _settings: MeasuresSettings) -> Rows:
    month_end = _month_ends(scope)
    m = month_end.c
    in_date = and_(
        StaffTraining.completed_on <= m.ends_on,
        or_(StaffTraining.expires_on.is_(None), StaffTraining.expires_on > m.ends_on),
    )
    per_person = (
        select(
            StaffMember.unit_id,
            m.month,
            any_(and_(in_date, StaffTraining.training == TrainingType.co_monitoring.value), "co"),
            any_(
                and_(in_date, StaffTraining.training == TrainingType.very_brief_advice.value),
                "vba",
            ),
        )
        .select_from(month_end)
        .join(
            StaffMember,
            and_(
                or_(StaffMember.started_on.is_(None), StaffMember.started_on <= m.ends_on),
                or_(StaffMember.left_on.is_(None), StaffMember.left_on > m.ends_on),
            ),
        )
        .outerjoin(StaffTraining, StaffTraining.staff_member_id == StaffMember.id)
        .where(scope.units(StaffMember.unit_id))
        .group_by(StaffMember.unit_id, StaffMember.id, m.month)
        .subquery("per_person")
    )
    p = per_person.c
    statement = select(
        p.unit_id,
        p.month,
        func.count().label("staff"),
        total(p.co).label("co"),
        total(p.vba).label("vba"),
    ).group_by(p.unit_id, p.month)
    for row in session.execute(statement):
        yield (row.unit_id, row.month, "staff_trained_co_monitoring"), Count(row.co, row.staff)
        yield (row.unit_id, row.month, "staff_trained_brief_advice"), Count(row.vba, row.staff)


# --- referrals opened in the month, and whether a quit date was set ----------------------------


def _opened_month(scope: Scope) -> ColumnElement[str]:
    months = months_between(scope.first, scope.last)
    return case(
        *[(Referral.opened_at < month.next().starts_at(), month.label) for month in months],
        else_=None,
    )


def referred(session: Session, scope: Scope, _settings: MeasuresSettings) -> Rows:
    per_referral = (
        select(
            Pregnancy.unit_id,
            Referral.pregnancy_id,
            _opened_month(scope).label("month"),
            flag(Referral.quit_date.is_not(None)).label("quit_date_set"),
        )
        .join(Pregnancy, Pregnancy.id == Referral.pregnancy_id)
        .where(
            Referral.opened_at >= scope.first.starts_at(),
            Referral.opened_at < scope.last.next().starts_at(),
            scope.units(Pregnancy.unit_id),
        )
        .subquery("per_referral")
    )
    r = per_referral.c
    per_woman = (
        select(r.unit_id, r.month, func.max(r.quit_date_set).label("quit_date_set"))
        .group_by(r.unit_id, r.month, r.pregnancy_id)
        .subquery("per_woman")
    )
    w = per_woman.c
    statement = select(
        w.unit_id, w.month, func.count().label("women"), total(w.quit_date_set).label("set")
    ).group_by(w.unit_id, w.month)
    for row in session.execute(statement):
        yield (row.unit_id, row.month, "quit_date_set"), Count(row.set, row.women)


# --- quit attempts by the month of the quit date: outcomes and NRT ------------------------------

_STAGES = tuple(OutcomeStage)
_QUIT = (OutcomeResult.co_confirmed_quit.value, OutcomeResult.self_reported_quit.value)
QUIT_MEASURES = {
    OutcomeStage.day_28: "quit_at_4_weeks",
    OutcomeStage.week_12: "quit_at_12_weeks",
    OutcomeStage.end_of_pregnancy: "quit_at_end_of_pregnancy",
}


def _awaited(stage: OutcomeStage) -> ColumnElement[bool]:
    """Still open, and no outcome at this stage or a later one: not yet countable."""
    earlier = [s.value for s in _STAGES[: _STAGES.index(stage)]]
    last = Referral.last_outcome_stage
    return and_(Referral.closed_at.is_(None), or_(last.is_(None), last.in_(earlier)))


def quit_attempts(session: Session, scope: Scope, _settings: MeasuresSettings) -> Rows:
    event = ReferralEvent
    is_outcome = event.kind == EventKind.outcome_check.value
    stage, result = event.data["stage"].as_string(), event.data["result"].as_string()
    treatment = event.data["treatment"].as_string()
    per_attempt = (
        select(
            Pregnancy.unit_id,
            month_label(Referral.quit_date).label("month"),
            *[
                any_(and_(is_outcome, stage == s.value, result.in_(_QUIT)), s.name)
                for s in QUIT_MEASURES
            ],
            *[any_(_awaited(s), f"{s.name}_awaited") for s in QUIT_MEASURES],
            any_(
                and_(event.kind == EventKind.treatment_issued.value, treatment.like("nrt%")), "nrt"
            ),
        )
        .select_from(Referral)
        .join(Pregnancy, Pregnancy.id == Referral.pregnancy_id)
        .outerjoin(
            event,
            and_(
                event.referral_id == Referral.id,
                event.kind.in_([EventKind.outcome_check.value, EventKind.treatment_issued.value]),
            ),
        )
        .where(scope.dates(Referral.quit_date), scope.units(Pregnancy.unit_id))
        .group_by(Pregnancy.unit_id, Referral.id, Referral.quit_date)
        .subquery("per_attempt")
    )
    q = per_attempt.c
    sums = [total(q[s.name]).label(s.name) for s in QUIT_MEASURES]
    awaited = [total(q[f"{s.name}_awaited"]).label(f"{s.name}_awaited") for s in QUIT_MEASURES]
    statement = select(
        q.unit_id,
        q.month,
        func.count().label("attempts"),
        *sums,
        *awaited,
        total(q.nrt).label("nrt"),
    ).group_by(q.unit_id, q.month)
    for row in session.execute(statement):
        values = row._mapping
        for s, code in QUIT_MEASURES.items():
            waiting = values[f"{s.name}_awaited"]
            yield (
                (row.unit_id, row.month, code),
                Count(values[s.name], row.attempts - waiting, waiting),
            )
        yield (row.unit_id, row.month, "nrt_prescribed"), Count(row.nrt, row.attempts)


# --- feedback on the stop-smoking service ------------------------------------------------------


def feedback(session: Session, scope: Scope, settings: MeasuresSettings) -> Rows:
    good = ServiceFeedback.rating >= settings.positive_feedback_from
    received = (
        select(
            ServiceFeedback.unit_id,
            month_label(ServiceFeedback.received_on).label("month"),
            flag(good).label("good"),
        )
        .where(scope.dates(ServiceFeedback.received_on), scope.units(ServiceFeedback.unit_id))
        .subquery("received")
    )
    f = received.c
    statement = select(
        f.unit_id, f.month, func.count().label("responses"), total(f.good).label("good")
    ).group_by(f.unit_id, f.month)
    for row in session.execute(statement):
        yield (row.unit_id, row.month, "feedback_positive"), Count(row.good, row.responses)
