"""The pregnancy as the API shows it."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


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
