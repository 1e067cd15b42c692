"""A CO test as an R4 Observation, both ways: posted Observation -> ``ReadingCreate``, and back.

Two kinds of Observation are accepted, each may carry the other as a ``component``:

- the CO test: code SNOMED 251900003, ``valueQuantity`` in UCUM ``[ppm]``, or
  ``dataAbsentReason`` ``asked-declined`` (she declined) or ``not-performed`` (no working monitor);
- her smoking status: code LOINC 72166-2 (or SNOMED 229819007), ``valueCodeableConcept`` one of the
  SNOMED codes in :data:`STATUS_BY_SNOMED`. Every woman is offered the test (NICE NG209), so a
  status Observation must say what happened to it, in a CO component.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.observation import Observation, ObservationComponent
from fhir.resources.R4B.quantity import Quantity
from pydantic import ValidationError

from app.errors import FieldError
from app.fhir.errors import Invalid, Unparseable, invalid
from app.pregnancies.models import Pregnancy
from app.readings.models import Reading, ReadingOutcome, SmokingStatus
from app.readings.schemas import ReadingCreate

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
EDD_EXTENSION = "https://exhale.invalid/fhir/StructureDefinition/estimated-due-date"

CO_CODE = (SNOMED, "251900003")
STATUS_CODES = {(LOINC, "72166-2"), (SNOMED, "229819007")}
STOPPED_ON_CODE = (SNOMED, "160625004")  # Date ceased smoking
STATUS_BY_SNOMED = {
    "77176002": SmokingStatus.smoker,
    "8517006": SmokingStatus.ex_smoker,
    "8392000": SmokingStatus.non_smoker,
    "266919005": SmokingStatus.non_smoker,  # never smoked tobacco: the app has no finer status
    "266927001": SmokingStatus.unknown,
}
SNOMED_BY_STATUS = {
    SmokingStatus.smoker: ("77176002", "Smoker"),
    SmokingStatus.ex_smoker: ("8517006", "Ex-smoker"),
    SmokingStatus.non_smoker: ("8392000", "Non-smoker"),
    SmokingStatus.unknown: ("266927001", "Tobacco smoking consumption unknown"),
}
OUTCOME_BY_ABSENT_REASON = {
    "asked-declined": ReadingOutcome.declined,
    "not-performed": ReadingOutcome.no_monitor,
}
ABSENT_REASON_BY_OUTCOME = {v: k for k, v in OUTCOME_BY_ABSENT_REASON.items()}
ACCEPTED_STATUSES = ("final", "amended")

# Where each ReadingCreate field came from, for errors the readings service raises.
FIELD_PATHS = {
    "nhs_number": "Observation.subject.identifier.value",
    "measured_at": "Observation.effectiveDateTime",
    "contact": "Observation.effectiveDateTime",
    "co_ppm": "Observation.valueQuantity.value",
    "outcome": "Observation.dataAbsentReason",
    "smoking_status": "Observation.valueCodeableConcept",
    "stopped_smoking_on": "Observation.component",
    "device_serial": "Observation.device.identifier.value",
    "source_id": "Observation.identifier",
    "pregnancy": "Observation.extension",
}
NO_PREGNANCY = (
    "your unit has no current pregnancy for this NHS number: add the extension "
    f"{EDD_EXTENSION} with valueDate (her estimated due date) to register one, or register "
    "it first with POST /api/v1/readings and its pregnancy details"
)


def parse(document: Any) -> Observation:
    """The posted JSON as an R4 Observation: 400 if it is no Observation, 422 if not valid R4."""
    if not isinstance(document, dict) or "resourceType" not in document:
        raise Unparseable("The body is not a FHIR resource: send an Observation as FHIR JSON.")
    if document["resourceType"] != "Observation":
        raise Unparseable(
            "The body is not an Observation: POST /fhir/Observation takes an Observation."
        )
    try:
        return Observation.model_validate(document)
    except ValidationError as error:
        raise _structure_errors(error) from None


def _structure_errors(error: ValidationError) -> Invalid:
    fields = []
    for item in error.errors():
        path = ".".join(["Observation", *(str(p) for p in item.get("loc", ()))])
        kind = str(item.get("type", ""))
        if kind == "extra_forbidden":
            message = "is not an element of FHIR R4 Observation (R5-only elements are refused)"
        elif kind.endswith("missing"):
            message = "is required"
        else:
            text = str(item.get("msg", "is not valid")).removeprefix("Value error, ")
            message = text.split("\n", 1)[0][:200]
        fields.append(FieldError(path, message))
    return Invalid(
        "The Observation is not valid FHIR R4: see each issue.",
        fields=fields,
        code="required" if all(f.message == "is required" for f in fields) else "structure",
    )


def _has(concept: CodeableConcept | None, codes: set[tuple[str, str]]) -> bool:
    return concept is not None and any((c.system, c.code) in codes for c in concept.coding or [])


def _ppm(quantity: Quantity, path: str) -> int:
    if quantity.code != "[ppm]" or (quantity.system not in (None, UCUM)):
        raise invalid(
            path, "exhaled CO is recorded in ppm: system http://unitsofmeasure.org, code [ppm]"
        )
    value = quantity.value
    if value is None or Decimal(value) != Decimal(value).to_integral_value():
        raise invalid(f"{path}.value", "must be a whole number of ppm, as the monitor shows it")
    return int(value)


def _co_outcome(
    quantity: Quantity | None, absent: CodeableConcept | None, path: str
) -> tuple[ReadingOutcome, int | None]:
    if quantity is not None:
        return ReadingOutcome.measured, _ppm(quantity, f"{path}.valueQuantity")
    for coding in absent.coding or [] if absent else []:
        if coding.system == DATA_ABSENT_SYSTEM and coding.code in OUTCOME_BY_ABSENT_REASON:
            return OUTCOME_BY_ABSENT_REASON[coding.code], None
    raise invalid(
        path,
        "give the CO result as valueQuantity in [ppm], or dataAbsentReason asked-declined "
        "(she declined the test) or not-performed (no working monitor)",
    )


def _status(concept: CodeableConcept | None, path: str) -> SmokingStatus:
    for coding in concept.coding or [] if concept else []:
        if coding.system == SNOMED and coding.code in STATUS_BY_SNOMED:
            return STATUS_BY_SNOMED[coding.code]
    raise invalid(
        f"{path}.valueCodeableConcept",
        "smoking status must be SNOMED 77176002, 8517006, 8392000, 266919005 or 266927001",
        code="code-invalid",
    )


def _components(
    observation: Observation,
) -> tuple[ObservationComponent | None, ObservationComponent | None, dt.date | None]:
    co = status = None
    stopped_on = None
    for index, component in enumerate(observation.component or []):
        path = f"Observation.component[{index}]"
        if _has(component.code, {CO_CODE}):
            co = component
        elif _has(component.code, STATUS_CODES):
            status = component
        elif _has(component.code, {STOPPED_ON_CODE}):
            stopped_on = _date_of(component.valueDateTime, path)
        else:
            raise invalid(f"{path}.code", "is not a component this server records")
    return co, status, stopped_on


def _date_of(value: Any, path: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise invalid(f"{path}.valueDateTime", "give the day she stopped smoking")


def _outcome_and_status(
    observation: Observation,
) -> tuple[ReadingOutcome, int | None, SmokingStatus, dt.date | None]:
    co, status, stopped_on = _components(observation)
    if _has(observation.code, {CO_CODE}):
        outcome, ppm = _co_outcome(
            observation.valueQuantity, observation.dataAbsentReason, "Observation"
        )
        smoking = (
            _status(status.valueCodeableConcept, "Observation.component")
            if status
            else SmokingStatus.unknown
        )
        return outcome, ppm, smoking, stopped_on
    if _has(observation.code, STATUS_CODES):
        smoking = _status(observation.valueCodeableConcept, "Observation")
        if co is None:
            raise invalid(
                "Observation.component",
                "add a component with code SNOMED 251900003 saying what happened to her CO "
                "test (valueQuantity in [ppm], or dataAbsentReason): every woman is offered one",
                code="required",
            )
        outcome, ppm = _co_outcome(co.valueQuantity, co.dataAbsentReason, "Observation.component")
        return outcome, ppm, smoking, stopped_on
    raise invalid(
        "Observation.code",
        "must be SNOMED 251900003 (exhaled CO) or LOINC 72166-2 (tobacco smoking status)",
        code="code-invalid",
    )


def _nhs_number(observation: Observation) -> str:
    subject = observation.subject
    if subject is None:
        raise invalid(
            "Observation.subject", "is required: the woman, by NHS number", code="required"
        )
    identifier = subject.identifier
    if identifier is None or identifier.system != NHS_NUMBER_SYSTEM or not identifier.value:
        raise invalid(
            "Observation.subject.identifier",
            f"give her NHS number as an identifier with system {NHS_NUMBER_SYSTEM}",
            code="required",
        )
    return str(identifier.value)


def _measured_at(observation: Observation) -> dt.datetime:
    value = observation.effectiveDateTime
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise invalid(
            "Observation.effectiveDateTime",
            "is required: the time of the test with a time zone, e.g. 2026-11-26T10:15:00Z",
            code="required",
        )
    return value


def source_id_of(system: str | None, value: str) -> str:
    return f"{system or ''}|{value}"


def source_ids(observation: Observation) -> list[str]:
    """The sender's identifiers of this Observation, as stored: ``system|value``."""
    return [
        source_id_of(identifier.system, identifier.value)
        for identifier in observation.identifier or []
        if identifier.value
    ]


def _device_serial(observation: Observation) -> str | None:
    device = observation.device
    if device is None:
        return None
    serial = (device.identifier.value if device.identifier else None) or device.display
    if not serial:
        raise invalid(
            "Observation.device",
            "name the monitor by its serial number in device.identifier.value",
        )
    return str(serial)


def _due_date(observation: Observation) -> dt.date | None:
    for extension in observation.extension or []:
        if extension.url == EDD_EXTENSION:
            if not isinstance(extension.valueDate, dt.date):
                raise invalid("Observation.extension", "give the due date as valueDate")
            return extension.valueDate
    return None


def to_reading_create(observation: Observation, *, source_id: str | None = None) -> ReadingCreate:
    """The readings service's input for this Observation, or :class:`Invalid` naming the fix.

    ``source_id`` is the identifier a conditional create names; by default the first one.
    """
    if observation.status not in ACCEPTED_STATUSES:
        raise invalid(
            "Observation.status", "must be final or amended: only completed tests are recorded"
        )
    nhs_number = _nhs_number(observation)
    measured_at = _measured_at(observation)
    outcome, ppm, smoking, stopped_on = _outcome_and_status(observation)
    due = _due_date(observation)
    fields: dict[str, Any] = {
        "nhs_number": nhs_number,
        "measured_at": measured_at,
        "outcome": outcome,
        "co_ppm": ppm,
        "smoking_status": smoking,
        "stopped_smoking_on": stopped_on,
        "device_serial": _device_serial(observation),
        "source_id": source_id or next(iter(source_ids(observation)), None),
        "pregnancy": {"estimated_due_date": due} if due else None,
    }
    try:
        return ReadingCreate.model_validate(fields)
    except ValidationError as error:
        raise fhir_fields(
            [
                FieldError(".".join(str(p) for p in e["loc"]) or "body", e["msg"])
                for e in error.errors()
            ]
        ) from None


def fhir_fields(fields: list[FieldError]) -> Invalid:
    """Errors named by ReadingCreate field, renamed to the Observation elements they came from."""
    renamed = []
    for field in fields:
        name = field.field.split(".", 1)[0]
        message = field.message.removeprefix("Value error, ")
        if name == "pregnancy":
            message = NO_PREGNANCY
        renamed.append(FieldError(FIELD_PATHS.get(name, "Observation"), message))
    return Invalid("The Observation cannot be recorded: see each issue.", fields=renamed)


def _identifier(source_id: str) -> dict[str, str]:
    system, bar, value = source_id.partition("|")
    if not bar:
        return {"value": source_id}
    return {"system": system, "value": value} if system else {"value": value}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _co_value(reading: Reading) -> dict[str, Any]:
    if reading.co_ppm is not None:
        return {
            "valueQuantity": {
                "value": reading.co_ppm,
                "unit": "ppm",
                "system": UCUM,
                "code": "[ppm]",
            }
        }
    reason = ABSENT_REASON_BY_OUTCOME[ReadingOutcome(reading.outcome)]
    return {"dataAbsentReason": {"coding": [{"system": DATA_ABSENT_SYSTEM, "code": reason}]}}


def to_resource(reading: Reading, pregnancy: Pregnancy) -> dict[str, Any]:
    """The stored reading as an R4 Observation (its smoking status as a component)."""
    code, display = SNOMED_BY_STATUS[SmokingStatus(reading.smoking_status)]
    components: list[dict[str, Any]] = [
        {
            "code": _concept(LOINC, "72166-2", "Tobacco smoking status"),
            "valueCodeableConcept": _concept(SNOMED, code, display),
        }
    ]
    if reading.stopped_smoking_on is not None:
        components.append(
            {
                "code": _concept(SNOMED, STOPPED_ON_CODE[1], "Date ceased smoking"),
                "valueDateTime": reading.stopped_smoking_on.isoformat(),
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(reading.id),
        "meta": {"versionId": "1", "lastUpdated": _instant(reading.created_at)},
        "status": "final",
        "code": _concept(SNOMED, CO_CODE[1], "Expired carbon monoxide concentration"),
        "subject": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": pregnancy.nhs_number}},
        "effectiveDateTime": _instant(reading.measured_at),
        "issued": _instant(reading.created_at),
        **_co_value(reading),
        "component": components,
    }
    if reading.source_id:
        resource["identifier"] = [_identifier(reading.source_id)]
    if reading.device_serial:
        resource["device"] = {"identifier": {"value": reading.device_serial}}
    return resource


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
