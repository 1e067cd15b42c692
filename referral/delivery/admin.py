"""Administration of delivery: what has not arrived and why, and sending messages again.

Works in the caller's transaction, like every service: it flushes, never commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.errors import Conflict, NotFound
from app.identity.principal import Principal
from app.logs import get_logger
from app.orgs.models import Organisation
from referral.delivery.models import DeliveryDestination, DeliverySecret, OutboxDeliveryState
from referral.delivery.relay import rowcount
from referral.delivery.schemas import DeliveryList, DeliveryRead, Redelivered
from referral.delivery.service import notify_relay
from referral.models import OutboxMessage, OutboxStatus, Referral

log = get_logger(__name__)

RECORD_TYPE = "outbox_message"
_NO_SYNC = {"synchronize_session": False}
_PENDING, _DELIVERED, _FAILED = (s.value for s in OutboxStatus)


def _ready_services(session: Session, service_ids: set[int], now: dt.datetime) -> dict[int, str]:
    """For each service that cannot send now, why: ``destination`` or ``secret``."""
    active = set(
        session.scalars(
            select(DeliveryDestination.service_id).where(
                DeliveryDestination.service_id.in_(service_ids), DeliveryDestination.is_active
            )
        )
    )
    signable = set(
        session.scalars(
            select(DeliverySecret.service_id).where(
                DeliverySecret.service_id.in_(service_ids),
                or_(DeliverySecret.expires_at.is_(None), DeliverySecret.expires_at > now),
            )
        )
    )
    reasons = {}
    for service_id in service_ids:
        if service_id not in active:
            reasons[service_id] = "destination"
        elif service_id not in signable:
            reasons[service_id] = "secret"
    return reasons


def _first_undelivered(session: Session, referral_ids: set[int]) -> dict[tuple[int, int], int]:
    statement = (
        select(OutboxMessage.referral_id, OutboxMessage.service_id, func.min(OutboxMessage.id))
        .where(OutboxMessage.referral_id.in_(referral_ids), OutboxMessage.status != _DELIVERED)
        .group_by(OutboxMessage.referral_id, OutboxMessage.service_id)
    )
    return {(r, s): first for r, s, first in session.execute(statement) if r is not None}


def _views(
    session: Session, *, where: Sequence[ColumnElement[bool]], now: dt.datetime, limit: int
) -> list[DeliveryRead]:
    rows = list(
        session.execute(
            select(OutboxMessage, Organisation.code, OutboxDeliveryState)
            .join(Organisation, Organisation.id == OutboxMessage.service_id)
            .outerjoin(
                OutboxDeliveryState, OutboxDeliveryState.outbox_message_id == OutboxMessage.id
            )
            .where(*where)
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
    )
    unready = _ready_services(session, {m.service_id for m, _, _ in rows}, now)
    first = _first_undelivered(session, {m.referral_id for m, _, _ in rows if m.referral_id})
    views = []
    for message, code, state in rows:
        view = _read(message, code, state)
        if message.status == _PENDING:
            blocker = first.get((message.referral_id or 0, message.service_id))
            if message.service_id in unready:
                view.waiting_for = unready[message.service_id]
            elif blocker is not None and blocker < message.id:
                view.waiting_for, view.blocked_by_id = "earlier_message", blocker
            elif message.next_attempt_at > now:
                view.waiting_for = "next_attempt"
        views.append(view)
    return views


def list_deliveries(
    session: Session,
    *,
    now: dt.datetime,
    status: OutboxStatus | None = None,
    service: Organisation | None = None,
    limit: int = 100,
) -> DeliveryList:
    """Undelivered messages (pending, failed, or one of them), oldest first, with counts; a
    pending message says what it waits for. Ids, codes and states only: no patient data."""
    statuses = [status.value] if status else [_PENDING, _FAILED]
    where: list[ColumnElement[bool]] = [OutboxMessage.status.in_(statuses)]
    if service is not None:
        where.append(OutboxMessage.service_id == service.id)
    counts = dict.fromkeys(statuses, 0)
    for name, count in session.execute(
        select(OutboxMessage.status, func.count()).where(*where).group_by(OutboxMessage.status)
    ):
        counts[name] = count
    return DeliveryList(
        counts=counts, deliveries=_views(session, where=where, now=now, limit=limit)
    )


def get_delivery_or_raise(session: Session, *, message_id: int, now: dt.datetime) -> DeliveryRead:
    views = _views(session, where=[OutboxMessage.id == message_id], now=now, limit=1)
    if not views:
        raise NotFound(f"No outbox message {message_id}; `exhale delivery list` shows them.")
    return views[0]


def _read(
    message: OutboxMessage, service_code: str, state: OutboxDeliveryState | None
) -> DeliveryRead:
    return DeliveryRead(
        id=message.id,
        webhook_id=message.webhook_id,
        service_code=service_code,
        referral_id=message.referral_id,
        event_type=message.event_type,
        status=message.status,
        attempts=message.attempts,
        created_at=message.created_at,
        next_attempt_at=message.next_attempt_at if message.status == _PENDING else None,
        last_attempt_at=message.last_attempt_at,
        delivered_at=message.delivered_at,
        failed_at=state.failed_at if state else None,
        last_status_code=state.last_status_code if state else None,
        last_error=message.last_error,
        redelivery_count=state.redelivery_count if state else 0,
    )


def count_undelivered(session: Session) -> dict[tuple[str, str], int]:
    """(service code, status) -> number of pending or failed messages."""
    statement = (
        select(Organisation.code, OutboxMessage.status, func.count())
        .join(Organisation, Organisation.id == OutboxMessage.service_id)
        .where(OutboxMessage.status.in_([_PENDING, _FAILED]))
        .group_by(Organisation.code, OutboxMessage.status)
    )
    return {(code, status): n for code, status, n in session.execute(statement)}


def _audit_redelivery(session: Session, *, actor: Principal, message_ids: list[int]) -> None:
    rows = session.execute(
        select(OutboxMessage.id, Referral.pregnancy_id)
        .outerjoin(Referral, Referral.id == OutboxMessage.referral_id)
        .where(OutboxMessage.id.in_(message_ids))
    )
    for message_id, pregnancy_id in rows:
        audit.record(
            session,
            actor=actor,
            action=audit.Action.update,
            record_type=RECORD_TYPE,
            record_id=message_id,
            subject_pregnancy_id=pregnancy_id,
            detail={"operation": "redeliver"},
        )


def _reopen_windows(session: Session, *, message_ids: list[int], now: dt.datetime) -> None:
    for message_id in message_ids:
        state = session.get(OutboxDeliveryState, message_id)
        if state is None:
            state = OutboxDeliveryState(outbox_message_id=message_id, redelivery_count=0)
            session.add(state)
        state.window_started_at = None
        state.window_attempts = 0
        state.failed_at = None
        state.redelivered_at = now
        state.redelivery_count = (state.redelivery_count or 0) + 1
    session.flush()


def redeliver(
    session: Session, *, message_id: int, actor: Principal, now: dt.datetime, lease_s: float
) -> OutboxMessage:
    """Send one message again as soon as possible, with the same ``webhook-id``.

    A failed message becomes pending with a new retry window. A pending one is made due now,
    unless an attempt may be in flight (claimed less than a lease ago): 409, try again shortly.
    A delivered one is 409: sending it again could put it after later events of its referral.
    """
    message = session.get(OutboxMessage, message_id, populate_existing=True)
    if message is None:
        raise NotFound(f"No outbox message {message_id}; `exhale delivery list` shows them.")
    if message.status == _DELIVERED:
        raise Conflict(
            f"Message {message_id} was delivered at {message.delivered_at:%Y-%m-%d %H:%M}Z."
        )
    fence = [OutboxMessage.id == message_id, OutboxMessage.attempts == message.attempts]
    if message.status == _FAILED:
        reopen = update(OutboxMessage).where(*fence, OutboxMessage.status == _FAILED)
        reopen = reopen.values(status=_PENDING, next_attempt_at=now)
        changed = rowcount(session.execute(reopen, execution_options=_NO_SYNC))
        if changed:
            _reopen_windows(session, message_ids=[message_id], now=now)
    else:
        not_in_flight = or_(
            OutboxMessage.last_attempt_at.is_(None),
            OutboxMessage.last_attempt_at <= now - dt.timedelta(seconds=lease_s),
        )
        hurry = update(OutboxMessage).where(*fence, OutboxMessage.status == _PENDING, not_in_flight)
        hurry = hurry.values(next_attempt_at=now)
        changed = rowcount(session.execute(hurry, execution_options=_NO_SYNC))
    if not changed:
        raise Conflict(
            f"Message {message_id} may be being sent right now; list it again in a minute."
        )
    _audit_redelivery(session, actor=actor, message_ids=[message_id])
    session.refresh(message)
    log.info("webhook_redelivery_requested", outbox_id=message_id, actor=actor.name)
    notify_relay(session)
    return message


def redeliver_failed(
    session: Session, *, service: Organisation | None, actor: Principal, now: dt.datetime
) -> Redelivered:
    """Every failed message (of one service, or of all) becomes pending with a new retry
    window; a referral's events still go in order."""
    statement = select(OutboxMessage.id).where(OutboxMessage.status == _FAILED)
    if service is not None:
        statement = statement.where(OutboxMessage.service_id == service.id)
    ids = list(session.scalars(statement.order_by(OutboxMessage.id).with_for_update()))
    if ids:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == _FAILED)
            .values(status=_PENDING, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        _reopen_windows(session, message_ids=ids, now=now)
        _audit_redelivery(session, actor=actor, message_ids=ids)
        notify_relay(session)
    log.info(
        "webhook_redelivery_requested",
        service=service.code if service else None,
        count=len(ids),
        actor=actor.name,
    )
    return Redelivered(redelivered=len(ids), ids=ids)
