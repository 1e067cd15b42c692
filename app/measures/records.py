"""Writing the records the measures need: the staff training register and service feedback.

A unit's lead (or an administrator) keeps the unit's training register; the stop-smoking service
(an advisor, or the service's system) records the feedback women give it. Staff records are not
patient data; feedback linked to a referral is, so its creation is audited against her pregnancy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.audit import service as audit
from app.errors import Conflict, FieldError, InvalidInput, NotFound
from app.identity.principal import Principal
from app.measures.models import ServiceFeedback, StaffMember, StaffTraining
from app.measures.schemas import (
    FeedbackCreate,
    StaffMemberCreate,
    StaffMemberUpdate,
    TrainingCreate,
)
from app.measures.service import Unit
from app.orgs.models import Organisation, OrganisationKind
from app.pregnancies.models import Pregnancy
from referral.models import Referral, ServiceArea

FEEDBACK_RECORD = "service_feedback"
# Training and feedback dated earlier are typing mistakes (a year like 0291 or 1926): the
# measures never count that far back.
EARLIEST_DATE = dt.date(2000, 1, 1)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"Check {field}.", fields=[FieldError(field, message)])


def _check_not_too_early(field: str, day: dt.date) -> None:
    if day < EARLIEST_DATE:
        raise _invalid(field, f"is before {EARLIEST_DATE.isoformat()}; check the year")


# --- the training register -------------------------------------------------------------------


def list_staff(session: Session, *, unit: Unit) -> list[StaffMember]:
    return list(
        session.scalars(
            select(StaffMember)
            .where(StaffMember.unit_id == unit.id)
            .options(selectinload(StaffMember.trainings))
            .order_by(StaffMember.name, StaffMember.id)
        )
    )


def get_staff_or_raise(session: Session, *, principal: Principal, staff_id: int) -> StaffMember:
    """A staff member of the caller's unit (any unit for an administrator); otherwise 404."""
    statement = select(StaffMember).where(StaffMember.id == staff_id)
    if principal.role != "admin":
        statement = statement.where(StaffMember.unit_id == principal.organisation_id)
    member = session.scalars(statement).one_or_none()
    if member is None:
        raise NotFound(f"No staff member {staff_id} is on your unit's register.")
    return member


def create_staff(session: Session, *, unit: Unit, body: StaffMemberCreate) -> StaffMember:
    taken = session.scalar(
        select(
            exists().where(
                StaffMember.unit_id == unit.id, StaffMember.staff_number == body.staff_number
            )
        )
    )
    if taken:
        raise Conflict(
            f"Staff number {body.staff_number} is already on {unit.code}'s register; "
            "update that record instead.",
            fields=[FieldError("staff_number", "is already on the register")],
        )
    member = StaffMember(
        unit_id=unit.id,
        staff_number=body.staff_number,
        name=body.name,
        role=body.role.value,
        started_on=body.started_on,
    )
    session.add(member)
    session.flush()
    return member


def update_staff(session: Session, *, member: StaffMember, body: StaffMemberUpdate) -> StaffMember:
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if name in {"name", "role"} and value is None:
            raise _invalid(name, "cannot be removed, only changed")
        setattr(member, name, value.value if name == "role" else value)
    started, left = member.started_on, member.left_on
    if started is not None and left is not None and left <= started:
        raise _invalid("left_on", f"must be after started_on ({started.isoformat()})")
    session.flush()
    return member


def record_training(
    session: Session, *, member: StaffMember, body: TrainingCreate, today: dt.date
) -> StaffTraining:
    if body.completed_on > today:
        raise _invalid("completed_on", "is in the future; record training once it is done")
    _check_not_too_early("completed_on", body.completed_on)
    if body.expires_on is not None and body.expires_on <= body.completed_on:
        raise _invalid("expires_on", "must be after completed_on")
    training = StaffTraining(
        staff_member_id=member.id,
        training=body.training.value,
        completed_on=body.completed_on,
        expires_on=body.expires_on,
    )
    try:
        with session.begin_nested():
            session.add(training)
            session.flush()
    except IntegrityError:
        raise Conflict(
            "This training is already recorded for that day.",
            fields=[FieldError("completed_on", "already recorded")],
        ) from None
    session.refresh(member)
    return training


# --- feedback on the stop-smoking service ----------------------------------------------------


def _referral_of_service(session: Session, principal: Principal, referral_id: int) -> Referral:
    referral = session.scalars(
        select(Referral).where(
            Referral.id == referral_id, Referral.service_id == principal.organisation_id
        )
    ).one_or_none()
    if referral is None:
        audit.record_denied(
            session,
            actor=principal,
            action=audit.Action.create,
            reason="not_found",
            record_type="referral",
            record_id=referral_id,
        )
        raise NotFound(f"No referral {referral_id} is visible to your organisation.")
    return referral


def _served_unit(session: Session, principal: Principal, code: str) -> Organisation:
    unit = session.scalars(
        select(Organisation).where(
            Organisation.code == code.strip().upper(),
            Organisation.kind == OrganisationKind.maternity_unit.value,
        )
    ).one_or_none()
    if unit is None:
        raise _invalid("unit", f"no maternity unit has the code {code.strip()[:16]!r}")
    serves = unit.default_service_id == principal.organisation_id or session.scalar(
        select(
            exists().where(
                ServiceArea.unit_id == unit.id, ServiceArea.service_id == principal.organisation_id
            )
        )
    )
    if not serves:
        raise _invalid("unit", f"your service takes no referrals from {unit.code}")
    return unit


def record_feedback(
    session: Session, *, principal: Principal, body: FeedbackCreate, today: dt.date
) -> ServiceFeedback:
    """Store one woman's feedback for the unit she was referred from."""
    if (body.referral_id is None) == (body.unit is None):
        raise _invalid("referral_id", "give referral_id, or unit when there is no referral")
    if body.received_on > today:
        raise _invalid("received_on", "is in the future")
    _check_not_too_early("received_on", body.received_on)
    pregnancy_id = None
    if body.referral_id is not None:
        referral = _referral_of_service(session, principal, body.referral_id)
        pregnancy = session.get(Pregnancy, referral.pregnancy_id)
        assert pregnancy is not None
        unit_id, pregnancy_id = pregnancy.unit_id, pregnancy.id
    else:
        assert body.unit is not None
        unit_id = _served_unit(session, principal, body.unit).id
    assert principal.organisation_id is not None
    feedback = ServiceFeedback(
        unit_id=unit_id,
        service_id=principal.organisation_id,
        referral_id=body.referral_id,
        rating=body.rating,
        comment=body.comment,
        received_on=body.received_on,
    )
    session.add(feedback)
    session.flush()
    if pregnancy_id is not None:
        audit.record(
            session,
            actor=principal,
            action=audit.Action.create,
            record_type=FEEDBACK_RECORD,
            record_id=feedback.id,
            subject_pregnancy_id=pregnancy_id,
        )
    return feedback


def list_feedback(
    session: Session, *, unit: Unit, first: dt.date, last: dt.date
) -> Sequence[tuple[ServiceFeedback, str]]:
    """The unit's feedback received from ``first`` to ``last``, newest first, with the service."""
    rows = session.execute(
        select(ServiceFeedback, Organisation.code)
        .join(Organisation, Organisation.id == ServiceFeedback.service_id)
        .where(
            ServiceFeedback.unit_id == unit.id,
            ServiceFeedback.received_on.between(first, last),
        )
        .order_by(ServiceFeedback.received_on.desc(), ServiceFeedback.id.desc())
    )
    return [(row[0], row[1]) for row in rows]
