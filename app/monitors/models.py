"""CO monitors and the results they send before a midwife attaches them to an appointment."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class Monitor(Base):
    """The registry: which unit a monitor is at, and when it is due for calibration."""

    __tablename__ = "monitor"

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    model: Mapped[str | None] = mapped_column(String(64))
    firmware: Mapped[str | None] = mapped_column(String(32))
    last_calibrated_on: Mapped[dt.date | None] = mapped_column(Date)
    calibration_due_on: Mapped[dt.date | None] = mapped_column(Date)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeviceReading(Base):
    """A monitor's result as its bridge sent it: unassigned until attached to a reading.

    (device serial, sequence) identifies a result, so a re-send is never a second one; a result
    is attached to at most one reading.
    """

    __tablename__ = "device_reading"
    __table_args__ = (
        UniqueConstraint("device_serial", "sequence"),
        Index("ix_device_reading_unit_unassigned", "unit_id", "reading_id", "measured_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    device_serial: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int]
    co_ppm: Mapped[int]
    measured_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    battery_percent: Mapped[int | None]
    calibration_due_on: Mapped[dt.date | None] = mapped_column(Date)
    api_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_client.id"))
    reading_id: Mapped[int | None] = mapped_column(
        ForeignKey("co_reading.id", ondelete="SET NULL"), unique=True
    )
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
