"""Referrals as the API shows them."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


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
    version: int
