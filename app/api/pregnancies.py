"""Pregnancies: find by NHS number, read one with its contacts, readings and referrals, and change
what the unit knows of it (due date, contact details, the birth, smoking status after the birth)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.auth import require
from app.api.deps import RecordId, SessionDep, SettingsDep
from app.api.strict_json import StrictJsonRoute
from app.audit import service as audit
from app.clock import local_today
from app.errors import FieldError, InvalidInput
from app.identity.principal import Principal
from app.pregnancies import service
from app.pregnancies.models import PostnatalStatus, Pregnancy
from app.pregnancies.nhs_number import InvalidNhsNumberError, normalise_nhs_number
from app.pregnancies.schemas import (
    BirthCreate,
    ContactRead,
    PostnatalStatusCreate,
    PostnatalStatusRead,
    PregnancyDetail,
    PregnancyRead,
    PregnancyUpdate,
    ReferralState,
)
from app.readings import service as readings
from app.readings.models import Reading
from referral.models import Referral

router = APIRouter(prefix="/api/v1/pregnancies", tags=["pregnancies"], route_class=StrictJsonRoute)

READERS = ("midwife", "epr")
WRITERS = ("midwife", "epr")


def parse_nhs_number(value: str, *, allow_synthetic: bool, field: str = "nhs_number") -> str:
    try:
        return normalise_nhs_number(value, allow_synthetic=allow_synthetic)
    except InvalidNhsNumberError as error:
        raise InvalidInput(f"Check {field}.", fields=[FieldError(field, str(error))]) from None


@router.get(
    "",
    summary="Find a woman's pregnancies at your unit by NHS number",
    description="Roles: midwife, epr. Each pregnancy returned is audited as read.",
)
def search_pregnancies(
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(*READERS)],
    nhs_number: Annotated[str, Query(description="10 digits, spaces allowed", max_length=20)],
) -> list[PregnancyRead]:
    number = parse_nhs_number(nhs_number, allow_synthetic=settings.synthetic_nhs_numbers_allowed)
    found = service.search_by_nhs_number(session, principal=principal, nhs_number=number)
    return [PregnancyRead.model_validate(p) for p in found]


def detail(session: Session, pregnancy: Pregnancy) -> PregnancyDetail:
    reading_rows = session.scalars(
        select(Reading).where(Reading.pregnancy_id == pregnancy.id).order_by(Reading.measured_at)
    )
    referral_rows = session.scalars(
        select(Referral).where(Referral.pregnancy_id == pregnancy.id).order_by(Referral.id)
    )
    statuses = session.scalars(
        select(PostnatalStatus)
        .where(PostnatalStatus.pregnancy_id == pregnancy.id)
        .order_by(PostnatalStatus.recorded_on)
    )
    return PregnancyDetail(
        **PregnancyRead.model_validate(pregnancy).model_dump(),
        contacts=[ContactRead.model_validate(c) for c in pregnancy.contacts],
        readings=[readings.to_read(session, r) for r in reading_rows],
        referrals=[
            ReferralState(
                id=r.id,
                status=r.status,
                reasons=r.reasons,
                service_code=r.service_code,
                opened_at=r.opened_at,
                closed_at=r.closed_at,
            )
            for r in referral_rows
        ],
        postnatal_statuses=[PostnatalStatusRead.model_validate(s) for s in statuses],
    )


@router.get(
    "/{id}",
    summary="Read one pregnancy with its contacts, readings and referrals",
    description="Roles: midwife, epr. A pregnancy at another unit is 404. Audited.",
)
def read_pregnancy(
    id: RecordId,
    session: SessionDep,
    principal: Annotated[Principal, require(*READERS, record=service.RECORD_TYPE)],
) -> PregnancyDetail:
    pregnancy = service.get_for_reader_or_raise(session, principal=principal, pregnancy_id=id)
    return detail(session, pregnancy)


def _committed(session: Session, pregnancy: Pregnancy) -> PregnancyDetail:
    """The answer, then the commit: see app.api.readings for why writes commit in the route."""
    answer = detail(session, pregnancy)
    session.commit()
    return answer


def _for_writer(session: Session, principal: Principal, pregnancy_id: int) -> Pregnancy:
    return service.get_for_reader_or_raise(
        session, principal=principal, pregnancy_id=pregnancy_id, action=audit.Action.update
    )


@router.patch(
    "/{id}",
    summary="Change the due date or her contact details",
    description="Roles: midwife, epr. Only the fields sent change; each change is audited.",
)
def update_pregnancy(
    id: RecordId,
    body: PregnancyUpdate,
    session: SessionDep,
    principal: Annotated[Principal, require(*WRITERS, record=service.RECORD_TYPE)],
) -> PregnancyDetail:
    pregnancy = _for_writer(session, principal, id)
    service.update(
        session,
        principal=principal,
        pregnancy=pregnancy,
        changes=body.model_dump(exclude_unset=True),
    )
    return _committed(session, pregnancy)


@router.post(
    "/{id}/birth",
    summary="Record the birth and her smoking status at delivery",
    description="Roles: midwife, epr. Recording it again corrects it. Ends the pregnancy.",
)
def record_birth(
    id: RecordId,
    body: BirthCreate,
    session: SessionDep,
    principal: Annotated[Principal, require(*WRITERS, record=service.RECORD_TYPE)],
) -> PregnancyDetail:
    pregnancy = _for_writer(session, principal, id)
    service.record_birth(
        session,
        principal=principal,
        pregnancy=pregnancy,
        born_on=body.born_on,
        smoking_status_at_delivery=body.smoking_status_at_delivery.value,
        today=local_today(),
    )
    return _committed(session, pregnancy)


@router.post(
    "/{id}/postnatal-status",
    summary="Record her smoking status after the birth",
    description="Roles: midwife, epr. One status per date; sending a date again corrects it.",
)
def record_postnatal_status(
    id: RecordId,
    body: PostnatalStatusCreate,
    session: SessionDep,
    principal: Annotated[Principal, require(*WRITERS, record=service.RECORD_TYPE)],
) -> PregnancyDetail:
    pregnancy = _for_writer(session, principal, id)
    service.record_postnatal_status(
        session,
        principal=principal,
        pregnancy=pregnancy,
        recorded_on=body.recorded_on,
        smoking_status=body.smoking_status.value,
        today=local_today(),
    )
    return _committed(session, pregnancy)
