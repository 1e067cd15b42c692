"""Deliveries, destinations and secrets as the admin API and CLI show them (never a secret,
except once when it is made)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

# Why a pending message has not gone yet; None: it is due now, or an attempt is in flight.
WAITING_REASONS = ("destination", "secret", "earlier_message", "next_attempt")


class DeliveryRead(BaseModel):
    id: int
    webhook_id: str
    service_code: str
    referral_id: int | None
    event_type: str
    status: str
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    failed_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    redelivery_count: int
    waiting_for: str | None = None
    blocked_by_id: int | None = None


class DeliveryList(BaseModel):
    counts: dict[str, int]
    deliveries: list[DeliveryRead]


class DestinationRead(BaseModel):
    url: str
    payload_mode: str
    is_active: bool
    updated_at: dt.datetime


class SecretRead(BaseModel):
    created_at: dt.datetime
    expires_at: dt.datetime | None


class ServiceDeliveryRead(BaseModel):
    service_code: str
    destination: DestinationRead | None
    valid_secrets: list[SecretRead]


class RotatedSecret(BaseModel):
    service_code: str
    secret: str
    previous_valid_until: dt.datetime | None


class Redelivered(BaseModel):
    redelivered: int
    ids: list[int]
