"""Writing and reading the audit trail.

Allowed actions are written in the request's own transaction: they commit with what they describe.
Denied attempts usually end the request with an error, which rolls that transaction back; they are
held on the session and written after the rollback (see ``app.api.deps.get_session``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.identity.principal import ActorType, Principal

_PENDING_DENIALS = "exhale.audit.pending_denials"
_INSERT = insert(AuditEvent)


class Action(enum.StrEnum):
    read = "read"
    search = "search"
    create = "create"
    update = "update"
    delete = "delete"
    login = "login"
    audit_query = "audit_query"


def _values(
    actor: Principal | None,
    *,
    action: str,
    outcome: str,
    record_type: str | None,
    record_id: str | int | None,
    subject_pregnancy_id: int | None,
    detail: dict[str, Any] | None,
) -> dict[str, Any]:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return {
        "actor_type": (actor.actor_type if actor else ActorType.anonymous).value,
        "actor_id": actor.id if actor else None,
        "actor_name": (actor.name if actor else "anonymous")[:150],
        "role": actor.role if actor else None,
        "organisation_id": actor.organisation_id if actor else None,
        "action": action,
        "record_type": record_type,
        "record_id": None if record_id is None else str(record_id)[:64],
        "subject_pregnancy_id": subject_pregnancy_id,
        "request_id": request_id,
        "outcome": outcome,
        "detail": detail,
    }


def record(
    session: Session,
    *,
    actor: Principal | None,
    action: str,
    record_type: str | None = None,
    record_id: str | int | None = None,
    subject_pregnancy_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record an allowed action in the current transaction.

    Written at once with a Core INSERT on the session's connection: nothing reads the row back,
    so the ORM's unit of work (a third of the CPU of a flush that carries it) is not needed.
    """
    record_each(
        session,
        actor=actor,
        action=action,
        records=[(record_type, record_id, subject_pregnancy_id)],
        detail=detail,
    )


def record_each(
    session: Session,
    *,
    actor: Principal | None,
    action: str,
    records: Sequence[tuple[str | None, str | int | None, int | None]],
    detail: dict[str, Any] | None = None,
) -> None:
    """Several allowed actions of one kind, as (record type, record id, subject pregnancy id),
    in one statement in the current transaction; ``detail`` goes on each."""
    rows = allowed_rows(actor=actor, action=action, records=records, detail=detail)
    if rows:
        session.connection().execute(_INSERT, rows)


def allowed_rows(
    *,
    actor: Principal | None,
    action: str,
    records: Sequence[tuple[str | None, str | int | None, int | None]],
    detail: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The ``audit_event`` rows ``record_each`` writes, for a caller writing them itself."""
    return [
        _values(
            actor,
            action=action,
            outcome="allowed",
            record_type=record_type,
            record_id=record_id,
            subject_pregnancy_id=subject,
            detail=detail,
        )
        for record_type, record_id, subject in records
    ]


def record_denied(
    session: Session,
    *,
    actor: Principal | None,
    action: str,
    reason: str,
    record_type: str | None = None,
    record_id: str | int | None = None,
    subject_pregnancy_id: int | None = None,
) -> None:
    """Hold a denied attempt; it is written even when the request's transaction rolls back."""
    values = _values(
        actor,
        action=action,
        outcome="denied",
        record_type=record_type,
        record_id=record_id,
        subject_pregnancy_id=subject_pregnancy_id,
        detail={"reason": reason},
    )
    session.info.setdefault(_PENDING_DENIALS, []).append(AuditEvent(**values))


def pending_denials(session: Session) -> bool:
    return bool(session.info.get(_PENDING_DENIALS))


def write_pending_denials(session: Session) -> None:
    for event in session.info.pop(_PENDING_DENIALS, []):
        session.add(event)


def list_for_pregnancies(session: Session, pregnancy_ids: list[int]) -> list[AuditEvent]:
    """Every audited access to these pregnancies' records, oldest first."""
    if not pregnancy_ids:
        return []
    statement = (
        select(AuditEvent)
        .where(AuditEvent.subject_pregnancy_id.in_(pregnancy_ids))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    )
    return list(session.scalars(statement))


def action_for_method(method: str) -> str:
    return {
        "GET": Action.read,
        "HEAD": Action.read,
        "POST": Action.create,
        "PUT": Action.update,
        "PATCH": Action.update,
        "DELETE": Action.delete,
    }.get(method.upper(), Action.read).value
