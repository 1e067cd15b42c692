"""The append-only audit trail of access to patient-identifiable records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIntPK, JSONType, UTCDateTime, utcnow


class AuditEvent(Base):
    """Who did what to which record, and whether it was allowed. Never holds patient data itself.

    ``subject_pregnancy_id`` names the woman's pregnancy the record belongs to, so that "who has
    looked at this woman's record" is one indexed query whatever the record type.
    """

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_record", "record_type", "record_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None]
    actor_name: Mapped[str] = mapped_column(String(150))
    role: Mapped[str | None] = mapped_column(String(16))
    organisation_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(String(32))
    record_type: Mapped[str | None] = mapped_column(String(32))
    record_id: Mapped[str | None] = mapped_column(String(64))
    subject_pregnancy_id: Mapped[int | None] = mapped_column(index=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
