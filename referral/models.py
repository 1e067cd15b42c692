"""Referrals to stop-smoking support, their events, and the outbox that delivers them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, JSONType, UTCDateTime, utcnow
from app.orgs.models import Organisation
from referral.lifecycle import ReferralStatus


class Referral(Base):
    __tablename__ = "referral"
    __table_args__ = (
        # One open referral per pregnancy: a new trigger is added to it, not a second referral.
        Index(
            "uq_referral_one_open_per_pregnancy",
            "pregnancy_id",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

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
    failed_contact_attempts: Mapped[int] = mapped_column(default=0)
    quit_date: Mapped[dt.date | None] = mapped_column(Date)
    last_outcome_stage: Mapped[str | None] = mapped_column(String(32))
    last_outcome_result: Mapped[str | None] = mapped_column(String(32))
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    service: Mapped[Organisation] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @property
    def service_code(self) -> str:
        return self.service.code


class ServiceArea(Base):
    """Routes a unit's referrals by postcode district (``LS1``) to a stop-smoking service.

    Without a matching area, a referral goes to the unit's default service.
    """

    __tablename__ = "service_area"
    __table_args__ = (UniqueConstraint("unit_id", "postcode_district"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"))
    postcode_district: Mapped[str] = mapped_column(String(4))
    service_id: Mapped[int] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    actor_name: Mapped[str] = mapped_column(String(150), default="")
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
        Index("ix_outbox_message_status_delivered_at", "status", "delivered_at"),
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
    # When a delivered message's payload was cut to its thin form (no patient details).
    payload_reduced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
