"""Records the change package's measures need that the clinical records do not hold.

The staff training register (who at a unit is trained in CO monitoring and very brief advice, and
until when) and women's feedback on the stop-smoking service. Very brief advice given, NRT and
quit outcomes are already recorded with the readings and the referral events.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, BigIntPK, JSONType, UTCDateTime, utcnow


class TrainingType(enum.StrEnum):
    """Training a staff member can hold; the first two are the change package's staff measures."""

    co_monitoring = "co_monitoring"
    very_brief_advice = "very_brief_advice"
    nrt_prescribing = "nrt_prescribing"
    tobacco_dependence = "tobacco_dependence"
    other = "other"


class StaffRole(enum.StrEnum):
    midwife = "midwife"
    maternity_support_worker = "maternity_support_worker"
    obstetrician = "obstetrician"
    neonatal = "neonatal"
    tobacco_dependence_advisor = "tobacco_dependence_advisor"
    other = "other"


class StaffMember(Base):
    """A member of a unit's clinical staff, counted in the staff measures while in post."""

    __tablename__ = "staff_member"
    __table_args__ = (UniqueConstraint("unit_id", "staff_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    staff_number: Mapped[str] = mapped_column(String(32))  # the trust's own id (e.g. ESR number)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    started_on: Mapped[dt.date | None] = mapped_column(Date)  # None: before the register began
    left_on: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    trainings: Mapped[list[StaffTraining]] = relationship(
        back_populates="staff_member", order_by="StaffTraining.completed_on"
    )


class StaffTraining(Base):
    """One completed training, valid from ``completed_on`` until ``expires_on`` (if it expires)."""

    __tablename__ = "staff_training"
    __table_args__ = (
        UniqueConstraint("staff_member_id", "training", "completed_on"),
        CheckConstraint("expires_on IS NULL OR expires_on > completed_on", name="expires_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_member_id: Mapped[int] = mapped_column(
        ForeignKey("staff_member.id", ondelete="CASCADE"), index=True
    )
    training: Mapped[str] = mapped_column(String(32))
    completed_on: Mapped[dt.date] = mapped_column(Date)
    expires_on: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    staff_member: Mapped[StaffMember] = relationship(back_populates="trainings")


class ServiceFeedback(Base):
    """A woman's rating (1 to 5) of the stop-smoking service, with her comment if she gave one.

    Recorded by the service; ``referral_id`` links it to her referral when it came from one (the
    unit is then the referral's), and is never shown to the unit's leads.
    """

    __tablename__ = "service_feedback"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_1_to_5"),
        Index("ix_service_feedback_unit_id_received_on", "unit_id", "received_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    referral_id: Mapped[int | None] = mapped_column(
        ForeignKey("referral.id", ondelete="SET NULL"), index=True
    )
    rating: Mapped[int]
    comment: Mapped[str | None] = mapped_column(Text)
    received_on: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MeasureMonth(Base):
    """A unit's measures for a month as last counted, and the settings they were counted under.

    ``counts`` maps each measure's code to ``[numerator, denominator, unknown]`` (unknown may be
    null); a measure with no records that month is absent. See ``app.measures.rollup``.
    """

    __tablename__ = "measure_month"
    __table_args__ = (Index("ix_measure_month_month", "month"),)

    unit_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    fingerprint: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, list[int | None]]] = mapped_column(JSONType)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MeasureMark(Base):
    """A write that may have changed a unit's measures for a month (``month`` None: any month).

    Appended by every such write in its own transaction, so writers never contend on a row;
    removed by the refresh that recomputed the pair.
    """

    __tablename__ = "measure_mark"
    __table_args__ = (Index("ix_measure_mark_unit_id_month", "unit_id", "month"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    unit_id: Mapped[int]
    month: Mapped[str | None] = mapped_column(String(7))
