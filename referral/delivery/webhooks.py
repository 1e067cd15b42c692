"""Standard Webhooks v1 messages for referral events: payloads, bodies and signatures.

The payload is built when the event happens and stored on the outbox row; each attempt turns it
into the same body bytes. A ``full`` destination gets the whole payload; a ``thin`` one gets ids,
status and the API path to fetch the referral from (an audited read). Headers follow
https://www.standardwebhooks.com: ``webhook-id`` (the same on every attempt of one message),
``webhook-timestamp`` (the attempt's time, Unix seconds) and ``webhook-signature`` (``v1,<base64
HMAC-SHA256 of id.timestamp.body>``, one per valid secret, space-separated, so a receiver holding
either secret during a rotation can verify).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import secrets
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from standardwebhooks.webhooks import Webhook

from referral.delivery.models import PayloadMode

EVENT_TYPES = ("referral.created", "referral.updated", "referral.closed")
REFERRAL_PATH = "/api/v1/referrals/{id}"
SECRET_PREFIX = "whsec_"  # noqa: S105  (the prefix, not a secret)
THIN_KEYS = ("referral_id", "service_code", "status", "url")


def new_webhook_id() -> str:
    """Stable for one outbox row, whatever happens to its attempts: receivers dedupe on it."""
    return f"msg_{uuid.uuid4().hex}"


def new_secret() -> str:
    """A ``whsec_`` secret: 32 random bytes, base64, as Standard Webhooks libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


class ReferralFacts(Protocol):
    """What a message reads of a referral: a ``Referral``, or the same facts without the ORM."""

    @property
    def id(self) -> int: ...

    @property
    def status(self) -> str: ...

    @property
    def reasons(self) -> list[str]: ...

    @property
    def opened_at(self) -> dt.datetime: ...

    @property
    def first_contact_due_at(self) -> dt.datetime | None: ...

    @property
    def closed_at(self) -> dt.datetime | None: ...


class WomanFacts(Protocol):
    """What a message reads of her pregnancy: a ``Pregnancy``, or the same facts."""

    @property
    def nhs_number(self) -> str: ...

    @property
    def given_name(self) -> str | None: ...

    @property
    def family_name(self) -> str | None: ...

    @property
    def date_of_birth(self) -> dt.date | None: ...

    @property
    def phone(self) -> str | None: ...

    @property
    def postcode(self) -> str | None: ...

    @property
    def estimated_due_date(self) -> dt.date: ...


class ReadingFacts(Protocol):
    """What a message reads of her latest test: a ``Reading``, or the same facts."""

    @property
    def co_ppm(self) -> int | None: ...

    @property
    def outcome(self) -> str: ...

    @property
    def measured_at(self) -> dt.datetime: ...

    @property
    def smoking_status(self) -> str: ...


def referral_data(
    *,
    referral: ReferralFacts,
    service_code: str,
    unit_code: str,
    pregnancy: WomanFacts,
    reading: ReadingFacts | None,
) -> dict[str, Any]:
    """The ``full`` data of a referral event: the referral, her contact details, latest CO."""
    latest = None
    if reading is not None:
        latest = {
            "co_ppm": reading.co_ppm,
            "outcome": reading.outcome,
            "measured_at": _iso(reading.measured_at),
            "smoking_status": reading.smoking_status,
        }
    return {
        "referral_id": referral.id,
        "status": str(referral.status),
        "reasons": list(referral.reasons or []),
        "opened_at": _iso(referral.opened_at),
        "first_contact_due_at": _iso(referral.first_contact_due_at),
        "closed_at": _iso(referral.closed_at),
        "service_code": service_code,
        "unit_code": unit_code,
        "url": REFERRAL_PATH.format(id=referral.id),
        "woman": {
            "nhs_number": pregnancy.nhs_number,
            "given_name": pregnancy.given_name,
            "family_name": pregnancy.family_name,
            "date_of_birth": _iso(pregnancy.date_of_birth),
            "phone": pregnancy.phone,
            "postcode": pregnancy.postcode,
            "estimated_due_date": _iso(pregnancy.estimated_due_date),
        },
        "latest_co_reading": latest,
    }


def envelope(*, event_type: str, occurred_at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event_type must be one of {', '.join(EVENT_TYPES)}, not {event_type!r}")
    return {"type": event_type, "timestamp": _iso(occurred_at), "data": data}


def project(payload: dict[str, Any], mode: PayloadMode) -> dict[str, Any]:
    """The envelope as a destination in ``mode`` receives it."""
    if mode is PayloadMode.full:
        return payload
    data = payload["data"]
    return {**payload, "data": {key: data.get(key) for key in THIN_KEYS}}


def encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON with sorted keys: the same bytes on every attempt (JSONB reorders keys)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("ascii")


def signed_headers(
    *, webhook_id: str, timestamp: dt.datetime, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """The Standard Webhooks headers, signed with each secret (newest first)."""
    if not secrets:
        raise ValueError("no signing secret: rotate one in with `exhale delivery secret rotate`")
    text = body.decode("ascii")
    signatures = [
        Webhook(secret).sign(msg_id=webhook_id, timestamp=timestamp, data=text)
        for secret in secrets
    ]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }
