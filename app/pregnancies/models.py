"""A pregnancy at a maternity unit, and the appointments (contacts) at which CO is tested."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.orgs.models import Organisation


class ContactKind(enum.StrEnum):
    booking = "booking"
    weeks_36 = "36_weeks"
    antenatal = "antenatal"
    postnatal = "postnatal"


class Pregnancy(Base):
    """Patient-identifiable: every read and write of a row is audited."""

    __tablename__ = "pregnancy"
    __table_args__ = (Index("ix_pregnancy_unit_id_nhs_number", "unit_id", "nhs_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str | None] = mapped_column(String(100))
    date_of_birth: Mapped[dt.date | None] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(32))
    postcode: Mapped[str | None] = mapped_column(String(10))
    estimated_due_date: Mapped[dt.date] = mapped_column(Date)
    born_on: Mapped[dt.date | None] = mapped_column(Date)
    smoking_status_at_delivery: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    unit: Mapped[Organisation] = relationship()
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="pregnancy", order_by="Contact.occurred_on"
    )

    @property
    def unit_code(self) -> str:
        return self.unit.code


class Contact(Base):
    """An antenatal or postnatal appointment; a pregnancy has one booking and one 36-week one."""

    __tablename__ = "contact"
    __table_args__ = (
        UniqueConstraint("pregnancy_id", "kind", "occurred_on"),
        Index(
            "uq_contact_one_booking_and_36_weeks",
            "pregnancy_id",
            "kind",
            unique=True,
            sqlite_where=text("kind IN ('booking', '36_weeks')"),
            postgresql_where=text("kind IN ('booking', '36_weeks')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pregnancy_id: Mapped[int] = mapped_column(
        ForeignKey("pregnancy.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    occurred_on: Mapped[dt.date] = mapped_column(Date)
    gestation_days: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    pregnancy: Mapped[Pregnancy] = relationship(back_populates="contacts")


class PostnatalStatus(Base):
    """Her smoking status after the birth, as she reported it on a date."""

    __tablename__ = "postnatal_status"
    __table_args__ = (UniqueConstraint("pregnancy_id", "recorded_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pregnancy_id: Mapped[int] = mapped_column(ForeignKey("pregnancy.id", ondelete="CASCADE"))
    recorded_on: Mapped[dt.date] = mapped_column(Date)
    smoking_status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
