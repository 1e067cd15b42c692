"""Administration: the audit trail of a woman's record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.auth import require
from app.api.deps import SessionDep, SettingsDep
from app.api.pregnancies import parse_nhs_number
from app.audit.history import access_history
from app.audit.schemas import AccessHistory
from app.identity.principal import Principal

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])


@router.get(
    "/audit",
    summary="Who has looked at this woman's record",
    description=(
        "Role: admin. Every audited read, write and denied attempt on any record of the woman's "
        "pregnancies at any unit, oldest first. The query itself is audited."
    ),
)
def read_access_history(
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require("admin")],
    nhs_number: Annotated[str, Query(description="10 digits, spaces allowed", max_length=20)],
) -> AccessHistory:
    number = parse_nhs_number(nhs_number, allow_synthetic=settings.synthetic_nhs_numbers_allowed)
    return access_history(session, principal=principal, nhs_number=number)
