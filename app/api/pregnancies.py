"""Pregnancies: find by NHS number, read one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import require
from app.api.deps import SessionDep, SettingsDep
from app.errors import FieldError, InvalidInput
from app.identity.principal import Principal
from app.pregnancies import service
from app.pregnancies.nhs_number import InvalidNhsNumberError, normalise_nhs_number
from app.pregnancies.schemas import PregnancyRead

router = APIRouter(prefix="/api/v1/pregnancies", tags=["pregnancies"])

READERS = ("midwife", "epr")


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


@router.get(
    "/{id}",
    summary="Read one pregnancy",
    description="Roles: midwife, epr. A pregnancy at another unit is 404. Audited.",
)
def read_pregnancy(
    id: int,
    session: SessionDep,
    principal: Annotated[Principal, require(*READERS, record=service.RECORD_TYPE)],
) -> PregnancyRead:
    pregnancy = service.get_for_reader_or_raise(session, principal=principal, pregnancy_id=id)
    return PregnancyRead.model_validate(pregnancy)
