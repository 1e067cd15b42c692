"""A referral to stop-smoking support as an R4 ServiceRequest, after HL7 BSeR's referral.

BSeR's tobacco use cessation referral is a ServiceRequest from the referring organisation to the
service, with the observations that justify it as ``supportingInfo``. The referral's detailed
lifecycle stage (contacted, quit date set, ...) has no ServiceRequest status of its own, so it is
given in an extension beside the coarse ``status``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.fhir.errors import BadSearch
from app.fhir.observations import NHS_NUMBER_SYSTEM, SNOMED
from app.pregnancies.models import Pregnancy
from app.readings.models import Reading
from referral.lifecycle import CLOSED_STATUSES, ReferralStatus
from referral.models import Referral

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
STAGE_EXTENSION = "https://exhale.invalid/fhir/StructureDefinition/referral-stage"
REVOKED = (ReferralStatus.opted_out, ReferralStatus.uncontactable, ReferralStatus.not_engaged)


def fhir_status(status: str) -> str:
    """active while open; completed when the pathway finished; revoked when it ended early."""
    referral_status = ReferralStatus(status)
    if referral_status is ReferralStatus.completed:
        return "completed"
    if referral_status in REVOKED:
        return "revoked"
    return "active"


STATUSES_BY_FHIR = {
    "active": tuple(s.value for s in ReferralStatus if s not in CLOSED_STATUSES),
    "completed": (ReferralStatus.completed.value,),
    "revoked": tuple(s.value for s in REVOKED),
}


def parse_statuses(values: list[str]) -> tuple[str, ...] | None:
    """The referral statuses that ``status=active,revoked`` (repeats ANDed) stand for; None: all."""
    chosen: set[str] | None = None
    for value in values:
        these: set[str] = set()
        for token in value.split(","):
            if token not in STATUSES_BY_FHIR:
                raise BadSearch("status takes active, completed or revoked.")
            these.update(STATUSES_BY_FHIR[token])
        chosen = these if chosen is None else chosen & these
    return None if chosen is None else tuple(sorted(chosen))


def _concept(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": SNOMED, "code": code, "display": display}]}


def _organisation(code: str, name: str) -> dict[str, Any]:
    return {"identifier": {"system": ODS_SYSTEM, "value": code}, "display": name}


def to_resource(session: Session, referral: Referral) -> dict[str, Any]:
    pregnancy = session.get(Pregnancy, referral.pregnancy_id)
    assert pregnancy is not None
    readings = session.scalars(
        select(Reading.id).where(Reading.referral_id == referral.id).order_by(Reading.id)
    )
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(referral.id),
        "meta": {"lastUpdated": _instant(referral.updated_at)},
        "extension": [{"url": STAGE_EXTENSION, "valueCode": referral.status}],
        "status": fhir_status(referral.status),
        "intent": "order",
        "category": [_concept("3457005", "Patient referral")],
        "priority": "routine",
        "code": _concept("710081004", "Smoking cessation therapy"),
        "subject": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": pregnancy.nhs_number}},
        "authoredOn": _instant(referral.opened_at),
        "requester": _organisation(pregnancy.unit.code, pregnancy.unit.name),
        "performer": [_organisation(referral.service.code, referral.service.name)],
        "reasonCode": [{"text": reason} for reason in referral.reasons],
    }
    supporting = [{"reference": f"Observation/{reading_id}"} for reading_id in readings]
    if supporting:
        resource["supportingInfo"] = supporting
    return resource


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
