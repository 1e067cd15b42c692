"""The CapabilityStatement: exactly the interactions and search parameters /fhir serves."""

from __future__ import annotations

from typing import Any

from app import __version__
from app.fhir.observations import EDD_EXTENSION, NHS_NUMBER_SYSTEM

PUBLISHED = "2026-11-26"
OBSERVATION_DOC = (
    "Exhaled CO tests (SNOMED 251900003, valueQuantity in UCUM [ppm], or dataAbsentReason "
    "asked-declined / not-performed) and tobacco smoking status (LOINC 72166-2, SNOMED value) "
    "with a CO component. Subject by identifier "
    f"{NHS_NUMBER_SYSTEM}. When the unit knows no current pregnancy for her, the extension "
    f"{EDD_EXTENSION} (valueDate) gives the estimated due date that registers it. "
    "Roles: epr, bridge, midwife. Reads and searches are audited."
)


def _param(name: str, kind: str, documentation: str) -> dict[str, str]:
    return {"name": name, "type": kind, "documentation": documentation}


def capability_statement(base_url: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": PUBLISHED,
        "publisher": "exhale",
        "kind": "instance",
        "software": {"name": "exhale", "version": __version__},
        "implementation": {"description": "exhale FHIR R4 API", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Send an exhale API key as `Authorization: Bearer <key>`; "
                    "roles as for the REST API."
                },
                "resource": [_observation(), _service_request()],
            }
        ],
    }


def _observation() -> dict[str, Any]:
    return {
        "type": "Observation",
        "documentation": OBSERVATION_DOC,
        "interaction": [{"code": "create"}, {"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [
            _param(
                "patient",
                "reference",
                "Chained only: patient.identifier (or subject:identifier) = "
                f"{NHS_NUMBER_SYSTEM}|<NHS number>",
            ),
            _param("code", "token", "http://snomed.info/sct|251900003"),
            _param("date", "date", "effectiveDateTime; prefixes eq, gt, ge, lt, le"),
        ],
    }


def _service_request() -> dict[str, Any]:
    return {
        "type": "ServiceRequest",
        "documentation": "Opt-out referrals to stop-smoking support, after HL7 BSeR's tobacco "
        "use cessation referral. Roles: service and advisor (their service's), midwife (her "
        "unit's). Audited.",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "searchParam": [_param("status", "token", "active, completed or revoked")],
    }
