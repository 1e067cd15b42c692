"""Finding and reading pregnancies, scoped to the caller's maternity unit and audited."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.errors import NotFound
from app.identity.principal import Principal
from app.pregnancies.models import Pregnancy

RECORD_TYPE = "pregnancy"


def get_for_reader_or_raise(
    session: Session, *, principal: Principal, pregnancy_id: int, action: str = audit.Action.read
) -> Pregnancy:
    """The pregnancy if it belongs to the caller's unit; otherwise 404, and the attempt audited."""
    pregnancy = session.scalars(
        select(Pregnancy).where(
            Pregnancy.id == pregnancy_id, Pregnancy.unit_id == principal.organisation_id
        )
    ).one_or_none()
    if pregnancy is None:
        audit.record_denied(
            session,
            actor=principal,
            action=action,
            reason="not_found",
            record_type=RECORD_TYPE,
            record_id=pregnancy_id,
        )
        raise NotFound(f"No pregnancy {pregnancy_id} is recorded at your unit.")
    audit.record(
        session,
        actor=principal,
        action=action,
        record_type=RECORD_TYPE,
        record_id=pregnancy.id,
        subject_pregnancy_id=pregnancy.id,
    )
    return pregnancy


def search_by_nhs_number(
    session: Session, *, principal: Principal, nhs_number: str
) -> list[Pregnancy]:
    """The unit's pregnancies for this NHS number, newest due date first; each one audited."""
    found = list(
        session.scalars(
            select(Pregnancy)
            .where(
                Pregnancy.nhs_number == nhs_number,
                Pregnancy.unit_id == principal.organisation_id,
            )
            .order_by(Pregnancy.estimated_due_date.desc(), Pregnancy.id.desc())
        )
    )
    for pregnancy in found:
        audit.record(
            session,
            actor=principal,
            action=audit.Action.search,
            record_type=RECORD_TYPE,
            record_id=pregnancy.id,
            subject_pregnancy_id=pregnancy.id,
        )
    return found


def ids_for_nhs_number(session: Session, nhs_number: str) -> list[int]:
    """Every pregnancy with this NHS number at any unit (for administrators' audit queries)."""
    return list(session.scalars(select(Pregnancy.id).where(Pregnancy.nhs_number == nhs_number)))
