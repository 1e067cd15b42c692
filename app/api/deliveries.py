"""Administration of webhook delivery to stop-smoking services: what has not arrived, sending it
again, and the services' signing secrets. Destinations (URL and payload mode) are set with
`exhale delivery destination set` on the server, like API keys."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from app.api.auth import require
from app.api.deps import RecordId, SessionDep, SettingsDep
from app.api.errors import error_answers
from app.db import utcnow
from app.identity.principal import Principal
from app.orgs import service as orgs
from referral.delivery import admin as delivery_admin
from referral.delivery import service as delivery
from referral.delivery.schemas import (
    DeliveryList,
    DeliveryRead,
    Redelivered,
    RotatedSecret,
    ServiceDeliveryRead,
)
from referral.delivery.sealing import Sealer
from referral.models import OutboxStatus

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])

AdminDep = Annotated[Principal, require("admin")]
ServiceCode = Annotated[str, Path(description="The stop-smoking service's ODS code", max_length=16)]


@router.get(
    "/deliveries",
    summary="Messages not yet delivered to stop-smoking services",
    description=(
        "Role: admin. Pending and failed webhook messages, oldest first, with counts; a pending "
        "message says what it waits for (`destination`, `secret`, `earlier_message`, "
        "`next_attempt`). Ids and states only, no patient data."
    ),
    responses=error_answers(r404="No stop-smoking service has the code given as `service`"),
)
def list_deliveries(
    session: SessionDep,
    _principal: AdminDep,
    status: Annotated[Literal["pending", "failed"] | None, Query()] = None,
    service: Annotated[str | None, Query(description="ODS code", max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryList:
    return delivery_admin.list_deliveries(
        session,
        now=utcnow(),
        status=OutboxStatus(status) if status else None,
        service=orgs.get_by_code_or_raise(session, service) if service else None,
        limit=limit,
    )


@router.post(
    "/deliveries/{id}/redeliver",
    summary="Send one message again",
    description=(
        "Role: admin. A failed message is retried with a new 3-day window; a pending one is "
        "made due now. Same `webhook-id`, so receivers can drop a copy they already have. "
        "409 for a delivered message, or one that may be being sent right now. Audited."
    ),
)
def redeliver(
    id: RecordId, session: SessionDep, settings: SettingsDep, principal: AdminDep
) -> DeliveryRead:
    now = utcnow()
    delivery_admin.redeliver(
        session, message_id=id, actor=principal, now=now, lease_s=settings.delivery.lease_s
    )
    return delivery_admin.get_delivery_or_raise(session, message_id=id, now=now)


@router.post(
    "/services/{code}/deliveries/redeliver",
    summary="Send all of a service's failed messages again",
    description=(
        "Role: admin. Every failed message to the service is retried with a new 3-day window; "
        "a referral's events still arrive in order. Audited."
    ),
)
def redeliver_failed(code: ServiceCode, session: SessionDep, principal: AdminDep) -> Redelivered:
    return delivery_admin.redeliver_failed(
        session, service=orgs.get_by_code_or_raise(session, code), actor=principal, now=utcnow()
    )


@router.get(
    "/services/{code}/delivery",
    summary="A service's webhook destination and secrets",
    description="Role: admin. The destination, if any, and when each valid secret ends; no secret.",
)
def read_service_delivery(
    code: ServiceCode, session: SessionDep, _principal: AdminDep
) -> ServiceDeliveryRead:
    return delivery.describe_service(
        session, service=orgs.get_by_code_or_raise(session, code), now=utcnow()
    )


@router.post(
    "/services/{code}/delivery/secret",
    summary="Rotate a service's signing secret",
    description=(
        "Role: admin. Returns a new `whsec_` secret, shown this once. The previous one stays "
        "valid for `EXHALE_DELIVERY__SECRET_OVERLAP_HOURS` (24): meanwhile every message is "
        "signed with both, so the receiver can switch at any moment."
    ),
)
def rotate_secret(
    code: ServiceCode, session: SessionDep, settings: SettingsDep, _principal: AdminDep
) -> RotatedSecret:
    return delivery.rotate_secret(
        session,
        service=orgs.get_by_code_or_raise(session, code),
        now=utcnow(),
        overlap=dt.timedelta(hours=settings.delivery.secret_overlap_hours),
        sealer=Sealer.from_settings(settings.delivery),
    )
