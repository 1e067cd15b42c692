"""Building requests for the readings API in tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clock import LONDON
from app.pregnancies.models import Pregnancy
from app.readings.models import Reading

NHS = "9990000069"


def at(day: dt.date, hour: int = 10) -> str:
    """That hour of England's ``day``, or now if it has not come yet: the API refuses a future time.

    Tests name days by their UTC date, which is England's date or the day before it, so the moment
    is always on ``day`` in England and the clinical date the server derives from it is ``day``.
    """
    moment = dt.datetime.combine(day, dt.time(hour), tzinfo=LONDON)
    return min(moment, dt.datetime.now(dt.UTC)).isoformat()


def due_for(gestation_days: int, on: dt.date) -> dt.date:
    """The due date that makes ``on`` fall at ``gestation_days``."""
    return on + dt.timedelta(days=280 - gestation_days)


def reading(
    *,
    on: dt.date,
    co_ppm: int | None = 2,
    nhs_number: str = NHS,
    edd: dt.date | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"nhs_number": nhs_number, "measured_at": at(on)}
    if co_ppm is not None:
        body["co_ppm"] = co_ppm
    if edd is not None:
        body["pregnancy"] = {
            "estimated_due_date": edd.isoformat(),
            "given_name": "Jane",
            "family_name": "Testpatient",
            "phone": "07700 900123",
            "postcode": "LS1 4AP",
        }
    body.update(extra)
    return body


def counts(session: Session) -> tuple[int, int]:
    readings = session.scalar(select(func.count()).select_from(Reading)) or 0
    pregnancies = session.scalar(select(func.count()).select_from(Pregnancy)) or 0
    return readings, pregnancies
