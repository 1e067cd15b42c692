"""Monitor results as bridges post them, and the registry as units see it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from app.fields import IsoDate, IsoDatetime

Serial = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class DeviceReadingCreate(BaseModel):
    """One result, exactly as the monitor reported it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "device_serial": "SIM-0001",
                    "sequence": 42,
                    "co_ppm": 7,
                    "measured_at": "2026-11-26T10:15:30+00:00",
                    "battery_percent": 87,
                    "calibration_due_on": "2027-01-31",
                    "model": "exhale-sim",
                    "firmware": "1.0.0",
                }
            ]
        },
    )

    device_serial: Serial
    sequence: StrictInt = Field(ge=1, le=999_999_999)
    co_ppm: StrictInt = Field(ge=0, description="Whole ppm, 0 to EXHALE_MAX_CO_PPM.")
    measured_at: IsoDatetime
    battery_percent: StrictInt | None = Field(default=None, ge=0, le=100)
    calibration_due_on: IsoDate | None = None
    model: Annotated[StrictStr, Field(max_length=64)] | None = None
    firmware: Annotated[StrictStr, Field(max_length=32)] | None = None


class DeviceReadingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_serial: str
    sequence: int
    co_ppm: int
    measured_at: dt.datetime
    battery_percent: int | None
    received_at: dt.datetime
    reading_id: int | None
    calibration_warning: str | None = None


class MonitorRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    serial: str
    model: str | None
    firmware: str | None
    last_calibrated_on: dt.date | None
    calibration_due_on: dt.date | None
    last_seen_at: dt.datetime | None
    calibration_overdue: bool = False


class MonitorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    last_calibrated_on: IsoDate | None = None
    calibration_due_on: IsoDate | None = None
