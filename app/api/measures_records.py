"""The records the measures need: the staff training register, and feedback on the service.

Included in ``app.api.measures``' router (same prefix, tags and roles policy): a unit's lead
keeps the register; the stop-smoking service records feedback; leads read it without the
referral it came from.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from app.api.auth import require
from app.api.deps import RecordId, SessionDep
from app.api.errors import error_answers
from app.api.measures_params import FromQuery, ToQuery, UnitQuery
from app.api.strict_json import StrictJsonRoute
from app.clock import local_today
from app.identity.principal import Principal
from app.measures import records, service
from app.measures.models import StaffMember
from app.measures.schemas import (
    FeedbackCreate,
    FeedbackRead,
    StaffMemberCreate,
    StaffMemberRead,
    StaffMemberUpdate,
    TrainingCreate,
    TrainingRead,
)
from app.orgs.models import Organisation

router = APIRouter(route_class=StrictJsonRoute)

LEADS = ("lead", "admin")
SERVICE = ("advisor", "service")


# --- the staff training register ------------------------------------------------------------


def _staff_read(member: StaffMember, unit_code: str) -> StaffMemberRead:
    return StaffMemberRead(
        id=member.id,
        unit=unit_code,
        staff_number=member.staff_number,
        name=member.name,
        role=member.role,
        started_on=member.started_on,
        left_on=member.left_on,
        trainings=[TrainingRead.model_validate(t) for t in member.trainings],
    )


@router.get(
    "/staff",
    summary="The unit's staff training register",
    description="Roles: lead (her unit), admin (`unit`, or her own). Staff and their training.",
)
def list_staff(
    session: SessionDep,
    principal: Annotated[Principal, require(*LEADS)],
    unit: UnitQuery = None,
) -> list[StaffMemberRead]:
    chosen = service.unit_for(session, principal=principal, code=unit)
    return [_staff_read(m, chosen.code) for m in records.list_staff(session, unit=chosen)]


@router.post(
    "/staff",
    status_code=201,
    summary="Add a staff member to the training register",
    description="Roles: lead (her unit), admin (`unit` in the body). Staff numbers are unique "
    "per unit (409).",
    responses=error_answers(r409="The staff number is already on the unit's register"),
)
def create_staff(
    body: StaffMemberCreate,
    session: SessionDep,
    principal: Annotated[Principal, require(*LEADS)],
) -> StaffMemberRead:
    chosen = service.unit_for(session, principal=principal, code=body.unit)
    member = records.create_staff(session, unit=chosen, body=body)
    answer = _staff_read(member, chosen.code)
    session.commit()
    return answer


@router.patch(
    "/staff/{id}",
    summary="Change a staff member's record (for example the day she left)",
    description="Roles: lead (her unit's staff), admin. Only the fields sent change.",
)
def update_staff(
    id: RecordId,
    body: StaffMemberUpdate,
    session: SessionDep,
    principal: Annotated[Principal, require(*LEADS)],
) -> StaffMemberRead:
    member = records.get_staff_or_raise(session, principal=principal, staff_id=id)
    records.update_staff(session, member=member, body=body)
    answer = _staff_read(member, _unit_code(session, member))
    session.commit()
    return answer


@router.post(
    "/staff/{id}/training",
    status_code=201,
    summary="Record a staff member's completed training",
    description="Roles: lead (her unit's staff), admin. `training`: co_monitoring, "
    "very_brief_advice, nrt_prescribing, tobacco_dependence, other; `expires_on` when it must "
    "be renewed (the staff measures count in-date training only).",
    responses=error_answers(r409="This training is already recorded for that day"),
)
def record_training(
    id: RecordId,
    body: TrainingCreate,
    session: SessionDep,
    principal: Annotated[Principal, require(*LEADS)],
) -> StaffMemberRead:
    member = records.get_staff_or_raise(session, principal=principal, staff_id=id)
    records.record_training(session, member=member, body=body, today=local_today())
    answer = _staff_read(member, _unit_code(session, member))
    session.commit()
    return answer


def _unit_code(session: SessionDep, member: StaffMember) -> str:
    unit = session.get(Organisation, member.unit_id)
    assert unit is not None
    return unit.code


# --- feedback on the stop-smoking service ---------------------------------------------------


@router.post(
    "/feedback",
    status_code=201,
    summary="Record a woman's feedback on the stop-smoking service",
    description="Roles: advisor, service. Give `referral_id` (a referral routed to your "
    "service; the unit is the referral's) or, for feedback without one, `unit` (a unit your "
    "service takes referrals from). `rating` 1 to 5; `comment` optional.",
)
def record_feedback(
    body: FeedbackCreate,
    session: SessionDep,
    principal: Annotated[Principal, require(*SERVICE)],
) -> FeedbackRead:
    feedback = records.record_feedback(session, principal=principal, body=body, today=local_today())
    unit = session.get(Organisation, feedback.unit_id)
    service_org = session.get(Organisation, feedback.service_id)
    assert unit is not None and service_org is not None
    answer = FeedbackRead(
        id=feedback.id,
        unit=unit.code,
        service=service_org.code,
        rating=feedback.rating,
        comment=feedback.comment,
        received_on=feedback.received_on,
    )
    session.commit()
    return answer


@router.get(
    "/feedback",
    summary="Feedback on the stop-smoking service from the unit's women",
    description="Roles: lead (her unit), admin. Received from `from` to `to` (months), newest "
    "first; without the referral it came from.",
)
def list_feedback(
    session: SessionDep,
    principal: Annotated[Principal, require(*LEADS)],
    unit: UnitQuery = None,
    first: FromQuery = None,
    last: ToQuery = None,
) -> list[FeedbackRead]:
    start, end = service.month_range(first, last, today=local_today())
    chosen = service.unit_for(session, principal=principal, code=unit)
    rows = records.list_feedback(session, unit=chosen, first=start.first_day, last=end.last_day)
    return [
        FeedbackRead(
            id=f.id,
            unit=chosen.code,
            service=service_code,
            rating=f.rating,
            comment=f.comment,
            received_on=f.received_on,
        )
        for f, service_code in rows
    ]
