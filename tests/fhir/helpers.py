"""Building FHIR R4 Observations for tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.fhir.observations import EDD_EXTENSION, NHS_NUMBER_SYSTEM
from app.readings.models import Reading
from referral.models import Referral

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
SNOMED = "http://snomed.info/sct"
EPR_SYSTEM = "https://epr.example.nhs.uk/observation-id"


def co_observation(
    *,
    nhs_number: str,
    when: dt.datetime,
    ppm: int | float | None = 2,
    identifier: str | None = None,
    edd: dt.date | None = None,
    smoking: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": SNOMED, "code": "251900003"}]},
        "subject": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}},
        "effectiveDateTime": when.isoformat(),
    }
    if ppm is not None:
        body["valueQuantity"] = {
            "value": ppm,
            "unit": "ppm",
            "system": "http://unitsofmeasure.org",
            "code": "[ppm]",
        }
    if identifier is not None:
        body["identifier"] = [{"system": EPR_SYSTEM, "value": identifier}]
    if edd is not None:
        body["extension"] = [{"url": EDD_EXTENSION, "valueDate": edd.isoformat()}]
    if smoking is not None:
        body["component"] = [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
                "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": smoking}]},
            }
        ]
    body.update(extra)
    return body


def stored(session: Session) -> tuple[int, int]:
    """(readings, referrals) in the database."""
    session.expire_all()
    readings = session.scalar(select(func.count()).select_from(Reading)) or 0
    referrals = session.scalar(select(func.count()).select_from(Referral)) or 0
    return readings, referrals


def issue(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    first: dict[str, Any] = body["issue"][0]
    return first
