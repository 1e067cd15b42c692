"""Who has looked at a woman's record: for administrators, through the API or the command line."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.schemas import AccessHistory, AuditEventRead
from app.identity.principal import Principal
from app.pregnancies import service as pregnancies


def access_history(session: Session, *, principal: Principal, nhs_number: str) -> AccessHistory:
    """Every audited access to any of the woman's pregnancies at any unit, oldest first.

    The query is itself a look at her record, so it is audited too (after the events are read, so
    it appears in the next query's answer, not in this one).
    """
    ids = pregnancies.ids_for_nhs_number(session, nhs_number)
    events = audit.list_for_pregnancies(session, ids)
    for pregnancy_id in ids:
        audit.record(
            session,
            actor=principal,
            action=audit.Action.audit_query,
            record_type=pregnancies.RECORD_TYPE,
            record_id=pregnancy_id,
            subject_pregnancy_id=pregnancy_id,
        )
    return AccessHistory(
        pregnancy_ids=ids, events=[AuditEventRead.model_validate(e) for e in events]
    )
