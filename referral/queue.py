"""Reading referrals: a stop-smoking service sees the referrals routed to it, a unit its own."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.errors import NotFound
from app.identity.principal import Principal
from app.orgs.models import OrganisationKind
from app.pregnancies.models import Pregnancy
from referral.models import Referral

RECORD_TYPE = "referral"


def get_for_reader_or_raise(
    session: Session, *, principal: Principal, referral_id: int, action: str = audit.Action.read
) -> Referral:
    """The referral if the caller's organisation may see it; otherwise 404, audited."""
    statement = select(Referral).where(Referral.id == referral_id)
    if principal.organisation_kind == OrganisationKind.stop_smoking_service:
        statement = statement.where(Referral.service_id == principal.organisation_id)
    else:
        statement = statement.join(Pregnancy, Pregnancy.id == Referral.pregnancy_id).where(
            Pregnancy.unit_id == principal.organisation_id
        )
    referral = session.scalars(statement).one_or_none()
    if referral is None:
        audit.record_denied(
            session,
            actor=principal,
            action=action,
            reason="not_found",
            record_type=RECORD_TYPE,
            record_id=referral_id,
        )
        raise NotFound(f"No referral {referral_id} is visible to your organisation.")
    audit.record(
        session,
        actor=principal,
        action=action,
        record_type=RECORD_TYPE,
        record_id=referral.id,
        subject_pregnancy_id=referral.pregnancy_id,
    )
    return referral
