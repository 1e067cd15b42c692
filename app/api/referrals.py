"""Referrals to stop-smoking support."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from app.api.auth import require
from app.api.deps import SessionDep
from app.identity.principal import Principal
from referral import queue
from referral.schemas import ReferralRead

router = APIRouter(prefix="/api/v1/referrals", tags=["referrals"])

READERS = ("advisor", "service", "midwife")


@router.get(
    "/{id}",
    summary="Read one referral",
    description=(
        "Roles: advisor, service (referrals routed to their service), midwife (her unit's). "
        "Any other referral is 404. Audited."
    ),
)
def read_referral(
    id: int,
    session: SessionDep,
    principal: Annotated[Principal, require(*READERS, record=queue.RECORD_TYPE)],
) -> ReferralRead:
    referral = queue.get_for_reader_or_raise(session, principal=principal, referral_id=id)
    return ReferralRead.model_validate(referral)
