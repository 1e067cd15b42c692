"""Where each stop-smoking service receives its webhooks, the secrets that sign them, and the
delivery state of each outbox message beyond what ``referral.models.OutboxMessage`` holds."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.orgs.models import Organisation


class PayloadMode(enum.StrEnum):
    full = "full"  # the referral with her contact details and latest CO reading
    thin = "thin"  # ids only: the receiver fetches the referral through the audited API


class DeliveryDestination(Base):
    """One endpoint per stop-smoking service. Messages wait while it is missing or inactive."""

    __tablename__ = "delivery_destination"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    payload_mode: Mapped[str] = mapped_column(String(8), default=PayloadMode.full.value)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    service: Mapped[Organisation] = relationship()


class DeliverySecret(Base):
    """A ``whsec_`` signing secret of a service; valid until ``expires_at`` (None: no end).

    HMAC signing needs the secret itself, so it cannot be stored as a digest: it is kept sealed
    with a key from the environment (``referral.delivery.sealing``). After a rotation two are
    valid and every message carries a signature by each.
    """

    __tablename__ = "delivery_secret"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    sealed_secret: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class OutboxDeliveryState(Base):
    """Per outbox message: when its retry window opened, and how its last attempt ended.

    Written by the relay at the first recorded attempt (a row may have none yet); the window
    opens at the first attempt, not at enqueue, so messages held for a missing destination do
    not use it up, and a redelivery opens a new one.
    """

    __tablename__ = "outbox_delivery_state"

    outbox_message_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_message.id", ondelete="CASCADE"), primary_key=True
    )
    window_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    window_attempts: Mapped[int] = mapped_column(default=0)  # recorded in this window
    last_status_code: Mapped[int | None]
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    redelivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    redelivery_count: Mapped[int] = mapped_column(default=0)
