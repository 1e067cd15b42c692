"""The measures API's bodies: measure values, SPC charts, the training register, feedback."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from app.fields import IsoDate, RecordRef
from app.measures.models import StaffRole, TrainingType

Suppressed = Literal["*"]


class MeasureDefinitionRead(BaseModel):
    code: str
    title: str
    numerator: str
    denominator: str
    month: str = Field(description="What places a record in a month.")
    improvement: Literal["up", "down"]
    unknown: Literal["none", "status_unknown", "outcome_awaited"] = Field(
        description="What `unknown` counts: records left out of the denominator."
    )
    mandatory: bool


class MeasureValueRead(BaseModel):
    unit: str
    month: str
    measure: str
    numerator: int | Suppressed
    denominator: int | Suppressed
    proportion: float | Suppressed | None = Field(description="None: no data (no denominator).")
    unknown: int | Suppressed | None
    note: Literal["", "no data", "suppressed"]


class MeasuresRead(BaseModel):
    first: str = Field(serialization_alias="from")
    last: str = Field(serialization_alias="to")
    suppress_below: int
    units: list[dict[str, str]]
    values: list[MeasureValueRead]


class SignalRead(BaseModel):
    rule: str
    side: str


class SpcPointRead(BaseModel):
    month: str
    value: float | None
    numerator: int | None
    denominator: int | None
    moving_range: float | None
    centre: float | None
    lower: float | None
    upper: float | None
    lower_two_thirds: float | None
    upper_two_thirds: float | None
    signals: list[SignalRead]
    variation: str | None


class SpcChartRead(BaseModel):
    unit: str
    measure: str
    title: str
    chart: Literal["p", "xmr"]
    improvement: Literal["up", "down"]
    centre: float | None
    mean_moving_range: float | None
    baseline_from: str | None
    baseline_to: str | None
    run_length: int
    trend_length: int
    variation: str | None = Field(description="The latest month's: common or special cause.")
    points: list[SpcPointRead]


# --- the staff training register ----------------------------------------------------------------

Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
StaffNumber = Annotated[
    StrictStr, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._/-]+$")
]


class StaffMemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: Annotated[StrictStr, Field(max_length=16)] | None = Field(
        default=None, description="The unit's code; a lead's own unit when left out."
    )
    staff_number: StaffNumber = Field(description="The trust's own id, e.g. the ESR number.")
    name: Name
    role: StaffRole
    started_on: IsoDate | None = None


class StaffMemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    role: StaffRole | None = None
    started_on: IsoDate | None = None
    left_on: IsoDate | None = Field(default=None, description="The day after her last in post.")


class TrainingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    training: TrainingType
    completed_on: IsoDate
    expires_on: IsoDate | None = Field(default=None, description="Leave out if it never expires.")


class TrainingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    training: str
    completed_on: dt.date
    expires_on: dt.date | None


class StaffMemberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    unit: str
    staff_number: str
    name: str
    role: str
    started_on: dt.date | None
    left_on: dt.date | None
    trainings: list[TrainingRead]


# --- feedback on the stop-smoking service -------------------------------------------------------


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    referral_id: RecordRef | None = Field(
        default=None, description="Her referral, when the feedback came from one."
    )
    unit: Annotated[StrictStr, Field(max_length=16)] | None = Field(
        default=None, description="The maternity unit's code, when there is no referral."
    )
    rating: StrictInt = Field(ge=1, le=5, description="1 (poor) to 5 (very good).")
    comment: Annotated[StrictStr, Field(max_length=2000)] | None = None
    received_on: IsoDate


class FeedbackRead(BaseModel):
    id: int
    unit: str
    service: str
    rating: int
    comment: str | None
    received_on: dt.date
