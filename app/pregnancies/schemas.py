"""The pregnancy as the API shows it."""

from __future__ import annotations

import datetime as dt
import enum

from pydantic import BaseModel, ConfigDict, Field

from app.fields import IsoDate
from app.readings.models import SmokingStatus
from app.readings.schemas import Phone, Postcode, ReadingRead, ShortText


class PregnancyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    unit_code: str
    nhs_number: str
    given_name: str | None
    family_name: str | None
    date_of_birth: dt.date | None
    phone: str | None
    postcode: str | None
    estimated_due_date: dt.date
    born_on: dt.date | None
    smoking_status_at_delivery: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ContactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    occurred_on: dt.date
    gestation_days: int


class ReferralState(BaseModel):
    id: int
    status: str
    reasons: list[str]
    service_code: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None


class PostnatalStatusRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    recorded_on: dt.date
    smoking_status: str


class PregnancyDetail(PregnancyRead):
    contacts: list[ContactRead]
    readings: list[ReadingRead]
    referrals: list[ReferralState]
    postnatal_statuses: list[PostnatalStatusRead]


class PregnancyUpdate(BaseModel):
    """Only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    estimated_due_date: IsoDate | None = None
    given_name: ShortText | None = None
    family_name: ShortText | None = None
    date_of_birth: IsoDate | None = None
    phone: Phone | None = None
    postcode: Postcode | None = None


class AtDelivery(enum.StrEnum):
    smoker = "smoker"
    non_smoker = "non_smoker"
    unknown = "unknown"


class BirthCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    born_on: IsoDate
    smoking_status_at_delivery: AtDelivery = Field(
        description="Her smoking status at the time of delivery (SATOD)."
    )


class PostnatalStatusCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recorded_on: IsoDate
    smoking_status: SmokingStatus
