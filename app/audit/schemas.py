"""The audit trail as the API shows it."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    occurred_at: dt.datetime
    actor_type: str
    actor_name: str
    role: str | None
    organisation_id: int | None
    action: str
    record_type: str | None
    record_id: str | None
    outcome: str
    request_id: str | None


class AccessHistory(BaseModel):
    pregnancy_ids: list[int]
    events: list[AuditEventRead]
