"""The readings contract that midwives' tools, EPRs and bridges code against."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from app.fields import IsoDate, IsoDatetime, RecordRef
from app.pregnancies.models import ContactKind
from app.readings.models import ReadingOutcome, SmokingStatus

ShortText = Annotated[StrictStr, Field(min_length=1, max_length=100)]


PHONE_LENGTH = (5, 32)


def _check_phone(value: str) -> str:
    # The length is checked here, not by Field, so that every bad phone gets this one message.
    shortest, longest = PHONE_LENGTH
    if not (
        shortest <= len(value) <= longest
        and all(c.isascii() and (c.isdigit() or c in " +()-") for c in value)
    ):
        raise ValueError(
            f"use {shortest} to {longest} digits, spaces and + ( ) - only, for example 07700 900123"
        )
    return value


def _normalise_postcode(value: str) -> str:
    compact = value.replace(" ", "").upper()
    if not (5 <= len(compact) <= 7 and compact.isascii() and compact.isalnum()):
        raise ValueError("use a UK postcode, for example LS1 4AP")
    return f"{compact[:-3]} {compact[-3:]}"


Phone = Annotated[
    StrictStr,
    Field(json_schema_extra={"minLength": PHONE_LENGTH[0], "maxLength": PHONE_LENGTH[1]}),
    AfterValidator(_check_phone),
]
Postcode = Annotated[
    StrictStr, Field(min_length=2, max_length=10), AfterValidator(_normalise_postcode)
]


class PregnancyDetails(BaseModel):
    """Who she is and when she is due: required when the unit knows no current pregnancy."""

    model_config = ConfigDict(extra="forbid")

    estimated_due_date: IsoDate = Field(description="The estimated due date (EDD).")
    given_name: ShortText | None = None
    family_name: ShortText | None = None
    date_of_birth: IsoDate | None = None
    phone: Phone | None = None
    postcode: Postcode | None = None


class ReadingCreate(BaseModel):
    """One CO test at an appointment."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "nhs_number": "943 476 5919",
                    "measured_at": "2026-11-26T10:15:00+00:00",
                    "contact": "booking",
                    "outcome": "measured",
                    "co_ppm": 6,
                    "smoking_status": "smoker",
                    "device_serial": "PB-104233",
                    "source_id": "epr-obs-000123",
                    "pregnancy": {
                        "estimated_due_date": "2027-06-10",
                        "given_name": "Jane",
                        "family_name": "Example",
                        "date_of_birth": "1994-02-17",
                        "phone": "07700 900123",
                        "postcode": "LS1 4AP",
                    },
                }
            ]
        },
    )

    nhs_number: StrictStr = Field(
        max_length=20, description="10 digits, spaces allowed; modulus 11 checked."
    )
    measured_at: IsoDatetime | None = Field(
        default=None,
        description="RFC 3339 with an offset; not more than 5 minutes in the future. Required "
        "unless `device_reading_id` is given (the monitor's time is used).",
    )
    device_reading_id: RecordRef | None = Field(
        default=None,
        description="A monitor result posted by the unit's bridge: its ppm, time and monitor "
        "are used, and it leaves the list of results not yet recorded.",
    )
    contact: ContactKind | None = Field(
        default=None,
        description="The appointment. When absent it is derived: see the endpoint's description.",
    )
    outcome: ReadingOutcome = ReadingOutcome.measured
    co_ppm: StrictInt | None = Field(
        default=None, description="Whole ppm; required when measured, forbidden otherwise."
    )
    smoking_status: SmokingStatus = Field(
        default=SmokingStatus.unknown, description="What she says, whatever the reading."
    )
    stopped_smoking_on: IsoDate | None = Field(default=None, description="For an ex-smoker.")
    very_brief_advice_given: StrictBool | None = Field(
        default=None, description="Whether very brief advice on smoking was given."
    )
    device_serial: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    source_id: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="Your own id for this reading; a re-send with it is a replay."
    )
    pregnancy: PregnancyDetails | None = None

    @model_validator(mode="after")
    def _ppm_matches_outcome(self) -> ReadingCreate:
        if self.device_reading_id is not None:
            if self.outcome is not ReadingOutcome.measured:
                raise ValueError("outcome: a monitor result is a measured test")
            return self
        if self.measured_at is None:
            raise ValueError("measured_at: required (or send device_reading_id)")
        if self.outcome is ReadingOutcome.measured and self.co_ppm is None:
            raise ValueError("co_ppm: required when outcome is measured")
        if self.outcome is not ReadingOutcome.measured and self.co_ppm is not None:
            raise ValueError(f"co_ppm: leave it out when outcome is {self.outcome.value}")
        return self


class AdviceRead(BaseModel):
    code: str
    text: str


class ReferralSummary(BaseModel):
    id: int
    status: str
    reasons: list[str]


class ReadingRead(BaseModel):
    id: int
    pregnancy_id: int
    contact: str | None
    gestation_days: int
    measured_at: dt.datetime
    outcome: str
    co_ppm: int | None
    smoking_status: str
    stopped_smoking_on: dt.date | None
    very_brief_advice_given: bool | None
    device_serial: str | None
    source_id: str | None
    referral: ReferralSummary | None
    advice: list[AdviceRead]
    calibration_warning: str | None = None

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
