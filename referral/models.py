"""Referrals to stop-smoking support, their events, and the outbox that delivers them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, JSONType, UTCDateTime, utcnow
from app.orgs.models import Organisation


class ReferralStatus(enum.StrEnum):
    pending = "pending"
    contacted = "contacted"
    engaged = "engaged"
    quit_date_set = "quit_date_set"
    opted_out = "opted_out"
    uncontactable = "uncontactable"
    not_engaged = "not_engaged"
    completed = "completed"


class Referral(Base):
    __tablename__ = "referral"

    id: Mapped[int] = mapped_column(primary_key=True)
    pregnancy_id: Mapped[int] = mapped_column(
        ForeignKey("pregnancy.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    status: Mapped[str] = mapped_column(String(32), default=ReferralStatus.pending.value)
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    policy_version: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_contact_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    service: Mapped[Organisation] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @property
    def service_code(self) -> str:
        return self.service.code


class ReferralEvent(Base):
    __tablename__ = "referral_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referral.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None]
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxStatus(enum.StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class OutboxMessage(Base):
    """A message for a stop-smoking service, written in the transaction that caused it."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_message_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    referral_id: Mapped[int | None] = mapped_column(
        ForeignKey("referral.id", ondelete="SET NULL"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.pending.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
