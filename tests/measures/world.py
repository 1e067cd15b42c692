"""Building small hand-counted worlds of records for the measures' tests, straight through the ORM.

A reading's day is its contact's ``occurred_on`` (the readings service always files a test under
the contact on its local date); ``measured_at`` is set to 10:00 UTC that day unless given.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy.orm import Session

from app.measures.models import ServiceFeedback, StaffMember, StaffTraining
from app.orgs.models import Organisation
from app.pregnancies.models import Contact, PostnatalStatus, Pregnancy
from app.readings.models import Reading
from referral.models import Referral, ReferralEvent
from tests import factories

_numbers = itertools.count(1)
UTC = dt.UTC


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


class World:
    def __init__(self, session: Session, unit: Organisation | None = None) -> None:
        self.session = session
        self.service = factories.make_service(session)
        self.unit = unit or factories.make_unit(session, service=self.service)
        self._contacts: dict[tuple[int, str, str], Contact] = {}

    def woman(
        self, *, due: str = "2026-09-01", born_on: str | None = None, satod: str | None = None
    ) -> Pregnancy:
        pregnancy = Pregnancy(
            unit_id=self.unit.id,
            nhs_number=f"99{next(_numbers):08d}",
            estimated_due_date=day(due),
            born_on=day(born_on) if born_on else None,
            smoking_status_at_delivery=satod,
        )
        self.session.add(pregnancy)
        self.session.flush()
        return pregnancy

    def contact(self, pregnancy: Pregnancy, kind: str, on: str) -> Contact:
        key = (pregnancy.id, kind, on)
        if key in self._contacts:
            return self._contacts[key]
        contact = Contact(
            pregnancy_id=pregnancy.id,
            kind=kind,
            occurred_on=day(on),
            gestation_days=280 - (pregnancy.estimated_due_date - day(on)).days,
        )
        self.session.add(contact)
        self.session.flush()
        self._contacts[key] = contact
        return contact

    def reading(
        self,
        pregnancy: Pregnancy,
        on: str,
        *,
        kind: str = "antenatal",
        co_ppm: int | None = None,
        outcome: str | None = None,
        status: str = "unknown",
        advice: bool | None = None,
        referral: Referral | None = None,
        measured_at: dt.datetime | None = None,
    ) -> Reading:
        contact = self.contact(pregnancy, kind, on)
        reading = Reading(
            pregnancy_id=pregnancy.id,
            contact_id=contact.id,
            measured_at=measured_at or dt.datetime.combine(day(on), dt.time(10), tzinfo=UTC),
            outcome=outcome or ("measured" if co_ppm is not None else "declined"),
            co_ppm=co_ppm,
            smoking_status=status,
            very_brief_advice_given=advice,
            referral_id=referral.id if referral else None,
        )
        self.session.add(reading)
        self.session.flush()
        return reading

    def postnatal_status(self, pregnancy: Pregnancy, on: str, status: str) -> None:
        self.session.add(
            PostnatalStatus(pregnancy_id=pregnancy.id, recorded_on=day(on), smoking_status=status)
        )
        self.session.flush()

    def referral(
        self,
        pregnancy: Pregnancy,
        opened_at: dt.datetime,
        *,
        quit_date: str | None = None,
        closed: bool = False,
        last_stage: str | None = None,
    ) -> Referral:
        referral = Referral(
            pregnancy_id=pregnancy.id,
            service_id=self.service.id,
            status="opted_out" if closed else ("quit_date_set" if quit_date else "pending"),
            reasons=["co_elevated"],
            policy_version="test",
            opened_at=opened_at,
            quit_date=day(quit_date) if quit_date else None,
            closed_at=opened_at + dt.timedelta(days=30) if closed else None,
            last_outcome_stage=last_stage,
        )
        self.session.add(referral)
        self.session.flush()
        return referral

    def event(self, referral: Referral, kind: str, **data: Any) -> None:
        self.session.add(
            ReferralEvent(
                referral_id=referral.id,
                kind=kind,
                data=data,
                actor_type="user",
                actor_name="advisor",
                occurred_at=referral.opened_at + dt.timedelta(days=1),
            )
        )
        self.session.flush()

    def staff(
        self,
        *,
        started_on: str | None = None,
        left_on: str | None = None,
        unit: Organisation | None = None,
    ) -> StaffMember:
        member = StaffMember(
            unit_id=(unit or self.unit).id,
            staff_number=f"ESR{next(_numbers)}",
            name="Test Staff",
            role="midwife",
            started_on=day(started_on) if started_on else None,
            left_on=day(left_on) if left_on else None,
        )
        self.session.add(member)
        self.session.flush()
        return member

    def training(
        self, member: StaffMember, training: str, completed_on: str, expires_on: str | None = None
    ) -> None:
        self.session.add(
            StaffTraining(
                staff_member_id=member.id,
                training=training,
                completed_on=day(completed_on),
                expires_on=day(expires_on) if expires_on else None,
            )
        )
        self.session.flush()

    def feedback(self, rating: int, received_on: str) -> None:
        self.session.add(
            ServiceFeedback(
                unit_id=self.unit.id,
                service_id=self.service.id,
                rating=rating,
                received_on=day(received_on),
            )
        )
        self.session.flush()
