"""Referrals as the API shows them, and the events advisors record."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from app.fields import MAX_RECORD_ID, IsoDate
from referral import lifecycle


class ReferralRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    pregnancy_id: int
    service_code: str
    status: str
    reasons: list[str]
    policy_version: str
    opened_at: dt.datetime
    first_contact_due_at: dt.datetime | None
    closed_at: dt.datetime | None
    accepted_at: dt.datetime | None
    quit_date: dt.date | None
    failed_contact_attempts: int
    last_outcome_stage: str | None
    last_outcome_result: str | None
    version: int


class QueueItem(ReferralRead):
    overdue: bool
    given_name: str | None
    family_name: str | None
    unit_code: str


class ReferralPage(BaseModel):
    items: list[QueueItem]
    total: int
    page: int
    page_size: int


class Woman(BaseModel):
    nhs_number: str
    given_name: str | None
    family_name: str | None
    date_of_birth: dt.date | None
    phone: str | None
    postcode: str | None
    estimated_due_date: dt.date
    unit_code: str


class LatestReading(BaseModel):
    measured_at: dt.datetime
    outcome: str
    co_ppm: int | None
    smoking_status: str


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    data: dict[str, Any]
    actor_type: str
    actor_name: str
    occurred_at: dt.datetime


class ReferralDetail(ReferralRead):
    overdue: bool
    woman: Woman
    latest_reading: LatestReading | None
    events: list[EventRead]
    allowed_events: list[str]


Note = Annotated[StrictStr, Field(max_length=2000)] | None


class _EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[StrictInt, Field(ge=0, le=MAX_RECORD_ID)] | None = Field(
        default=None, description="The referral's version you are changing (or send If-Match)."
    )
    note: Note = None


class ContactAttemptIn(_EventIn):
    kind: Literal["contact_attempt"]
    reached: StrictBool

    def event(self) -> lifecycle.Event:
        return lifecycle.ContactAttempt(reached=self.reached)


class AssessmentIn(_EventIn):
    kind: Literal["assessment"]

    def event(self) -> lifecycle.Event:
        return lifecycle.Assessment()


Treatment = Literal[
    "nrt_patch",
    "nrt_short_acting",
    "nrt_combination",
    "e_cigarette",
    "behavioural_support",
    "other",
]


class TreatmentIn(_EventIn):
    kind: Literal["treatment_issued"]
    treatment: Treatment

    def event(self) -> lifecycle.Event:
        return lifecycle.TreatmentIssued(treatment=self.treatment)


class QuitDateIn(_EventIn):
    kind: Literal["quit_date_set"]
    quit_date: IsoDate

    def event(self) -> lifecycle.Event:
        return lifecycle.QuitDateSet(quit_date=self.quit_date)


class OutcomeIn(_EventIn):
    kind: Literal["outcome_check"]
    stage: lifecycle.OutcomeStage
    result: lifecycle.OutcomeResult
    co_ppm: StrictInt | None = Field(default=None, ge=0, le=lifecycle.CO_PPM_MAX)

    def event(self) -> lifecycle.Event:
        return lifecycle.OutcomeCheck(stage=self.stage, result=self.result, co_ppm=self.co_ppm)


class OptOutIn(_EventIn):
    kind: Literal["opt_out"]
    reason: Annotated[StrictStr, Field(min_length=1, max_length=500)]

    def event(self) -> lifecycle.Event:
        return lifecycle.OptOut(reason=self.reason)


class NotEngagedIn(_EventIn):
    kind: Literal["not_engaged"]

    def event(self) -> lifecycle.Event:
        return lifecycle.NotEngaged()


class CloseIn(_EventIn):
    kind: Literal["close"]

    def event(self) -> lifecycle.Event:
        return lifecycle.Close()


EventCreate = Annotated[
    ContactAttemptIn
    | AssessmentIn
    | TreatmentIn
    | QuitDateIn
    | OutcomeIn
    | OptOutIn
    | NotEngagedIn
    | CloseIn,
    Field(discriminator="kind"),
]
