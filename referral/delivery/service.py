"""Outbox messages for stop-smoking services, and the services' destinations and secrets.

Every function works in the caller's transaction: it adds and flushes, never commits. On
PostgreSQL, writing a message that may now be sent also issues ``pg_notify``, which the
relay hears when (and only if) the transaction commits.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from app.errors import FieldError, InvalidInput, NotFound
from app.logs import get_logger
from app.orgs.models import Organisation, OrganisationKind
from app.pregnancies.models import Pregnancy
from app.readings.models import Reading
from referral.delivery.models import (
    DeliveryDestination,
    DeliverySecret,
    PayloadMode,
)
from referral.delivery.safety import DestinationPolicy, check_destination_url
from referral.delivery.schemas import (
    DestinationRead,
    RotatedSecret,
    SecretRead,
    ServiceDeliveryRead,
)
from referral.delivery.sealing import Sealer
from referral.delivery.webhooks import (
    EVENT_TYPES,
    envelope,
    new_secret,
    new_webhook_id,
    project,
    referral_data,
)
from referral.models import OutboxMessage, OutboxStatus, Referral

log = get_logger(__name__)

NOTIFY_CHANNEL = "exhale_outbox"
_PENDING = OutboxStatus.pending.value


_NOTIFY = select(func.pg_notify(NOTIFY_CHANNEL, ""))


def notify_relay(session: Session) -> None:
    """Wake the relays when this transaction commits (PostgreSQL; SQLite relays poll)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_NOTIFY)


def _latest_reading(session: Session, pregnancy_id: int) -> Reading | None:
    statement = (
        select(Reading)
        .where(Reading.pregnancy_id == pregnancy_id)
        .order_by(Reading.measured_at.desc(), Reading.id.desc())
        .limit(1)
    )
    return session.scalars(statement).first()


def enqueue_referral_event(
    session: Session,
    *,
    referral: Referral,
    event_type: str,
    now: dt.datetime,
    latest_reading: Reading | None = None,
) -> OutboxMessage:
    """Write the outbox message telling the referral's service about ``event_type``.

    ``event_type`` is ``referral.created``, ``referral.updated`` or ``referral.closed`` (an
    opt-out closes the referral). Call it after changing the referral, in the same transaction.
    The payload is built now, with the full data (the referral, her contact details, her latest
    CO reading), and stored: every attempt sends exactly this. A ``thin`` destination receives
    only the ids, status and API path taken from it; the mode is the destination's at send time.
    Without a destination the message waits (pending) until one is set; it never fails for that.
    ``latest_reading``, when the caller knows it is her latest, saves looking it up.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event_type must be one of {', '.join(EVENT_TYPES)}, not {event_type!r}")
    if referral.id is None or referral.service_id is None:
        session.flush()
    pregnancy = session.get_one(Pregnancy, referral.pregnancy_id)
    service = session.get_one(Organisation, referral.service_id)
    unit = session.get_one(Organisation, pregnancy.unit_id)
    data = referral_data(
        referral=referral,
        service_code=service.code,
        unit_code=unit.code,
        pregnancy=pregnancy,
        reading=latest_reading or _latest_reading(session, pregnancy.id),
    )
    message = OutboxMessage(
        service_id=service.id,
        referral_id=referral.id,
        event_type=event_type,
        webhook_id=new_webhook_id(),
        payload=envelope(event_type=event_type, occurred_at=now, data=data),
        status=_PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(message)
    session.flush()
    notify_relay(session)
    return message


def reduce_delivered_payloads(
    session: Session, *, delivered_before: dt.datetime, now: dt.datetime, limit: int = 500
) -> int:
    """Cut up to ``limit`` messages delivered before ``delivered_before`` to their thin form.

    A delivered message is never sent again, so once the service has had it for the retention
    period the copy of her details it holds has no further use. What stays is what a ``thin``
    destination receives (the referral's id, service, status and API path) with the event type
    and time: enough to say what was sent, when, and about which referral. Returns how many.
    """
    statement = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.delivered.value,
            OutboxMessage.delivered_at < delivered_before,
            OutboxMessage.payload_reduced_at.is_(None),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    messages = list(session.scalars(statement))
    for message in messages:
        message.payload = project(message.payload, PayloadMode.thin)
        message.payload_reduced_at = now
    session.flush()
    return len(messages)


# Destinations and secrets


def _check_service(service: Organisation) -> None:
    if service.kind != OrganisationKind.stop_smoking_service:
        raise InvalidInput(
            f"{service.code} is not a stop-smoking service; only services receive webhooks.",
            fields=[FieldError("service", "give a stop-smoking service's ODS code")],
        )


def get_destination(session: Session, *, service: Organisation) -> DeliveryDestination | None:
    return session.scalars(
        select(DeliveryDestination).where(DeliveryDestination.service_id == service.id)
    ).one_or_none()


def set_destination(
    session: Session,
    *,
    service: Organisation,
    url: str,
    mode: PayloadMode,
    policy: DestinationPolicy,
    now: dt.datetime,
    secret_overlap: dt.timedelta,
    sealer: Sealer,
) -> tuple[DeliveryDestination, str | None]:
    """Create or change the service's destination (active). A service without a valid signing
    secret gets one: it is returned, to be shown once; otherwise the second item is None."""
    _check_service(service)
    url = check_destination_url(url, policy=policy)
    destination = get_destination(session, service=service)
    if destination is None:
        destination = DeliveryDestination(service_id=service.id, created_at=now)
        session.add(destination)
    destination.url = url
    destination.payload_mode = mode.value
    destination.is_active = True
    destination.updated_at = now
    session.flush()
    secret = None
    if not _valid_secret_rows(session, service=service, now=now):
        secret = rotate_secret(
            session, service=service, now=now, overlap=secret_overlap, sealer=sealer
        ).secret
    log.info(
        "delivery_destination_set",
        service=service.code,
        host=urlsplit(url).hostname,
        payload_mode=mode.value,
    )
    notify_relay(session)
    return destination, secret


def set_destination_active(
    session: Session, *, service: Organisation, active: bool, now: dt.datetime
) -> DeliveryDestination:
    """Pause (messages wait) or resume a service's deliveries."""
    destination = get_destination(session, service=service)
    if destination is None:
        raise NotFound(
            f"{service.code} has no destination; set one with `exhale delivery destination set`.",
            code="destination_not_found",
        )
    destination.is_active = active
    destination.updated_at = now
    session.flush()
    log.info("delivery_destination_active", service=service.code, active=active)
    if active:
        notify_relay(session)
    return destination


def _valid_secret_rows(
    session: Session, *, service: Organisation, now: dt.datetime
) -> list[DeliverySecret]:
    statement = (
        select(DeliverySecret)
        .where(
            DeliverySecret.service_id == service.id,
            or_(DeliverySecret.expires_at.is_(None), DeliverySecret.expires_at > now),
        )
        .order_by(DeliverySecret.created_at.desc(), DeliverySecret.id.desc())
    )
    return list(session.scalars(statement))


def rotate_secret(
    session: Session,
    *,
    service: Organisation,
    now: dt.datetime,
    overlap: dt.timedelta,
    sealer: Sealer,
) -> RotatedSecret:
    """Make a new signing secret for the service and return it (shown once, never again).

    The secret it replaces stays valid for ``overlap`` (24 h by default), so messages carry a
    signature by each and the receiver can switch at any moment in that time. A secret still in
    an earlier rotation's overlap ends now: never more than two are valid. Expired ones are
    deleted.
    """
    _check_service(service)
    session.execute(
        delete(DeliverySecret).where(
            DeliverySecret.service_id == service.id, DeliverySecret.expires_at <= now
        )
    )
    previous_until = None
    for row in _valid_secret_rows(session, service=service, now=now):
        if row.expires_at is None:
            row.expires_at = previous_until = now + overlap
        else:
            row.expires_at = now
    secret = new_secret()
    session.add(
        DeliverySecret(service_id=service.id, sealed_secret=sealer.seal(secret), created_at=now)
    )
    session.flush()
    log.info("delivery_secret_rotated", service=service.code)
    notify_relay(session)
    return RotatedSecret(
        service_code=service.code, secret=secret, previous_valid_until=previous_until
    )


def reseal_secrets(session: Session, *, sealer: Sealer) -> int:
    """Seal every stored signing secret with the first key, after a new one is put first.

    Raises ``SealError`` (changing nothing) if a secret opens with none of the keys.
    """
    rows = list(session.scalars(select(DeliverySecret).order_by(DeliverySecret.id)))
    resealed = [(row, sealer.reseal(row.sealed_secret)) for row in rows]
    for row, sealed in resealed:
        row.sealed_secret = sealed
    session.flush()
    log.info("delivery_secrets_resealed", count=len(rows))
    return len(rows)


def describe_service(
    session: Session, *, service: Organisation, now: dt.datetime
) -> ServiceDeliveryRead:
    _check_service(service)
    destination = get_destination(session, service=service)
    return ServiceDeliveryRead(
        service_code=service.code,
        destination=(
            None
            if destination is None
            else DestinationRead(
                url=destination.url,
                payload_mode=destination.payload_mode,
                is_active=destination.is_active,
                updated_at=destination.updated_at,
            )
        ),
        valid_secrets=[
            SecretRead(created_at=row.created_at, expires_at=row.expires_at)
            for row in _valid_secret_rows(session, service=service, now=now)
        ],
    )
