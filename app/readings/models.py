"""A CO test at an appointment: a reading in ppm, or an outcome that is not a number."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, utcnow


class ReadingOutcome(enum.StrEnum):
    measured = "measured"
    declined = "declined"
    no_monitor = "no_monitor"


class SmokingStatus(enum.StrEnum):
    smoker = "smoker"
    ex_smoker = "ex_smoker"
    non_smoker = "non_smoker"
    unknown = "unknown"


class Reading(Base):
    __tablename__ = "co_reading"
    __table_args__ = (
        CheckConstraint(
            "(outcome = 'measured') = (co_ppm IS NOT NULL)", name="co_ppm_iff_measured"
        ),
        CheckConstraint("co_ppm IS NULL OR co_ppm >= 0", name="co_ppm_not_negative"),
        # A sender's own id for a reading is unique per sender: a re-send is a replay.
        UniqueConstraint("api_client_id", "source_id"),
        UniqueConstraint("recorded_by_user_id", "source_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pregnancy_id: Mapped[int] = mapped_column(
        ForeignKey("pregnancy.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    measured_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    co_ppm: Mapped[int | None]
    smoking_status: Mapped[str] = mapped_column(String(16), default=SmokingStatus.unknown.value)
    stopped_smoking_on: Mapped[dt.date | None] = mapped_column(Date)
    device_serial: Mapped[str | None] = mapped_column(String(64))
    source_id: Mapped[str | None] = mapped_column(String(200))
    api_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_client.id"))
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    very_brief_advice_given: Mapped[bool | None]
    # What the rules decided when the reading was recorded: kept so a replay answers the same.
    referral_id: Mapped[int | None] = mapped_column(
        ForeignKey("referral.id", ondelete="SET NULL"), index=True
    )
    advice: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    policy_version: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
