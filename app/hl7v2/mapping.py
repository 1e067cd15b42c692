"""From a parsed ORU^R01 to the ``ReadingCreate`` bodies the REST API takes: pure, no I/O.

One reading per OBX whose OBX-3 is SNOMED CT 251900003 (expired CO, a number of ppm) or
1110631000000106 (CO test declined). Two further OBX apply to every reading of the message:
LOINC 72166-2 (tobacco smoking status, a SNOMED CT code in OBX-5) and LOINC 11778-8 (estimated
due date, a DT in OBX-5), which registers the pregnancy when the unit has none, with the name,
date of birth, postcode and phone of the PID. Other OBX are ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from pydantic import ValidationError

from app.clock import LONDON
from app.hl7v2.errors import AckCode, ErrorCode, Location, MessageNotAccepted, Problem
from app.hl7v2.parse import Header, Observation, OruMessage, Patient
from app.pregnancies.nhs_number import InvalidNhsNumberError, normalise_nhs_number
from app.readings.models import ReadingOutcome, SmokingStatus
from app.readings.schemas import PregnancyDetails, ReadingCreate

CO_PPM = "251900003"
CO_TEST_DECLINED = "1110631000000106"
SMOKING_STATUS = "72166-2"
ESTIMATED_DUE_DATE = "11778-8"
SMOKING_STATUS_CODES = {
    "77176002": SmokingStatus.smoker,
    "8517006": SmokingStatus.ex_smoker,
    "8392000": SmokingStatus.non_smoker,
    "266919005": SmokingStatus.non_smoker,
    "266927001": SmokingStatus.unknown,
}
PPM_UNITS = {"ppm", "[ppm]"}
FINAL_STATUSES = {"", "F", "C"}  # OBX-11: final, corrected (or not sent)
NHS_AUTHORITY = "NHS"
NHS_TYPE = "NH"
SOURCE_ID_MAX = 200
# Without an offset an HL7 time is the sender's local time: England's, for an NHS trust.
_DTM = re.compile(r"^(\d{12})(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")
_WHOLE = re.compile(r"^\+?\d{1,6}(?:\.0*)?$")
# Where each pregnancy detail comes from, for naming it in an ERR.
DETAIL_FIELDS = {
    "family_name": (5, 1),
    "given_name": (5, 2),
    "date_of_birth": (7, None),
    "postcode": (11, 5),
    "phone": (13, 1),
}


def source_id(header: Header, index: int) -> str:
    """The reading's id from its sender: MSH-3/MSH-4, MSH-10 and the OBX's position."""
    sender = f"{header.sending_application}/{header.sending_facility}"
    readable = f"hl7v2:{sender}:{header.control_id}:{index}"
    if len(readable) <= SOURCE_ID_MAX:
        return readable
    digest = hashlib.sha256(f"{sender}\x00{header.control_id}".encode()).hexdigest()
    return f"hl7v2:sha256:{digest}:{index}"


def parse_time(value: str) -> dt.datetime:
    """An HL7 DTM to at least the minute; without an offset it is England's local time."""
    match = _DTM.match(value)
    if match is None:
        raise ValueError(value)
    moment = dt.datetime.strptime(  # noqa: DTZ007 (the zone is set below)
        match.group(1) + (match.group(2) or "00"), "%Y%m%d%H%M%S"
    )
    offset = match.group(3)
    if offset is None:
        return moment.replace(tzinfo=LONDON)
    sign = -1 if offset[0] == "-" else 1
    delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
    return moment.replace(tzinfo=dt.timezone(sign * delta))


def parse_date(value: str) -> dt.date:
    return dt.datetime.strptime(value[:8], "%Y%m%d").date()  # noqa: DTZ007 (a date, no time)


def nhs_number(patient: Patient | None, *, allow_synthetic: bool) -> str:
    """PID-3's NHS number: the identifier with authority NHS or type NH, or the only one."""
    if patient is None:
        raise MessageNotAccepted(
            AckCode.error,
            [Problem(ErrorCode.segment_sequence, "A PID segment is required.", Location("PID"))],
        )
    where = Location("PID", 1, 3)
    marked = [i for i in patient.identifiers if NHS_AUTHORITY in i[1:] or i[2] == NHS_TYPE]
    candidates = marked or (list(patient.identifiers) if len(patient.identifiers) == 1 else [])
    if not candidates or not candidates[0][0]:
        raise MessageNotAccepted(
            AckCode.error,
            [
                Problem(
                    ErrorCode.required_field_missing,
                    "PID-3 must carry the NHS number (assigning authority NHS, identifier "
                    "type NH).",
                    where,
                )
            ],
        )
    try:
        return normalise_nhs_number(candidates[0][0], allow_synthetic=allow_synthetic)
    except InvalidNhsNumberError as problem:
        raise MessageNotAccepted(
            AckCode.error,
            [Problem(ErrorCode.data_type, f"PID-3 NHS number {problem}", where)],
        ) from None


def _obx(observation: Observation, field: int | None = None) -> Location:
    return Location("OBX", observation.index, field)


def _smoking_status(observations: list[Observation], problems: list[Problem]) -> SmokingStatus:
    status = SmokingStatus.unknown
    for observation in observations:
        if observation.code != SMOKING_STATUS:
            continue
        if observation.value not in SMOKING_STATUS_CODES:
            problems.append(
                Problem(
                    ErrorCode.table_value_not_found,
                    "OBX-5 of a smoking status (72166-2) must be a SNOMED CT code: 77176002, "
                    "8517006, 8392000, 266919005 or 266927001.",
                    _obx(observation, 5),
                )
            )
            continue
        status = SMOKING_STATUS_CODES[observation.value]
    return status


def _due_date(observations: list[Observation], problems: list[Problem]) -> dt.date | None:
    due = None
    for observation in observations:
        if observation.code != ESTIMATED_DUE_DATE:
            continue
        try:
            due = parse_date(observation.value)
        except ValueError:
            problems.append(
                Problem(
                    ErrorCode.data_type,
                    "OBX-5 of the estimated due date (11778-8) must be a date, YYYYMMDD.",
                    _obx(observation, 5),
                )
            )
    return due


def _pregnancy(
    patient: Patient, due: dt.date | None, problems: list[Problem]
) -> PregnancyDetails | None:
    if due is None:
        return None
    details: dict[str, object] = {
        "estimated_due_date": due,
        "family_name": patient.family_name,
        "given_name": patient.given_name,
        "postcode": patient.postcode,
        "phone": patient.phone,
    }
    if patient.date_of_birth:
        try:
            details["date_of_birth"] = parse_date(patient.date_of_birth)
        except ValueError:
            details["date_of_birth"] = "not a date"
    try:
        return PregnancyDetails.model_validate({k: v for k, v in details.items() if v})
    except ValidationError as invalid:
        for item in invalid.errors():
            name = str(item["loc"][0]) if item["loc"] else ""
            field, component = DETAIL_FIELDS.get(name, (3, None))
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(
                Problem(
                    ErrorCode.data_type,
                    f"PID-{field} ({name.replace('_', ' ')}): {message}",
                    Location("PID", 1, field, component),
                )
            )
        return None


def _measured_at(
    observation: Observation, requested_at: str, problems: list[Problem]
) -> dt.datetime | None:
    value = observation.observed_at or requested_at
    if not value:
        problems.append(
            Problem(
                ErrorCode.required_field_missing,
                "OBX-14 (time of the test) is required, or OBR-7.",
                _obx(observation, 14),
            )
        )
        return None
    try:
        return parse_time(value)
    except ValueError:
        problems.append(
            Problem(
                ErrorCode.data_type,
                "OBX-14 must be a time to the minute at least, YYYYMMDDHHMM[SS][+/-ZZZZ].",
                _obx(observation, 14),
            )
        )
        return None


def _co_ppm(observation: Observation, problems: list[Problem]) -> int | None:
    """The whole ppm of a measured test; problems named by OBX field."""
    before = len(problems)
    if observation.value_type not in {"", "NM"}:
        problems.append(
            Problem(ErrorCode.data_type, "OBX-2 must be NM for a CO reading.", _obx(observation, 2))
        )
    if not _WHOLE.match(observation.value):
        problems.append(
            Problem(
                ErrorCode.data_type,
                "OBX-5 must be the reading as a whole number of ppm (for example 5).",
                _obx(observation, 5),
            )
        )
    if observation.units.lower() not in PPM_UNITS:
        problems.append(
            Problem(
                ErrorCode.table_value_not_found,
                "OBX-6 must be ppm: the monitor's reading in parts per million, not %COHb.",
                _obx(observation, 6),
            )
        )
    if len(problems) > before:
        return None
    return int(float(observation.value))


def _reading(
    observation: Observation,
    message: OruMessage,
    problems: list[Problem],
) -> dict[str, object] | None:
    before = len(problems)
    if observation.status not in FINAL_STATUSES:
        problems.append(
            Problem(
                ErrorCode.table_value_not_found,
                "OBX-11 must be F (final) or C (corrected): exhale records final results only.",
                _obx(observation, 11),
            )
        )
    declined = observation.code == CO_TEST_DECLINED
    co_ppm = None if declined else _co_ppm(observation, problems)
    measured_at = _measured_at(observation, message.requested_at, problems)
    if len(observation.equipment) > 64:
        problems.append(
            Problem(
                ErrorCode.data_type,
                "OBX-18 (the monitor's id) must be 64 characters or fewer.",
                _obx(observation, 18),
            )
        )
    if len(problems) > before:
        return None
    return {
        "measured_at": measured_at,
        "outcome": ReadingOutcome.declined if declined else ReadingOutcome.measured,
        "co_ppm": co_ppm,
        "device_serial": observation.equipment or None,
        "source_id": source_id(message.header, observation.index),
    }


def to_readings(message: OruMessage, *, allow_synthetic: bool) -> list[ReadingCreate]:
    """The message's readings, or :class:`MessageNotAccepted` (AE) listing every problem."""
    number = nhs_number(message.patient, allow_synthetic=allow_synthetic)
    assert message.patient is not None
    observations = list(message.observations)
    problems: list[Problem] = []
    status = _smoking_status(observations, problems)
    pregnancy = _pregnancy(message.patient, _due_date(observations, problems), problems)
    readings = [
        _reading(o, message, problems) for o in observations if o.code in {CO_PPM, CO_TEST_DECLINED}
    ]
    if not readings and not problems:
        problems.append(
            Problem(
                ErrorCode.required_field_missing,
                "No CO reading: send an OBX with OBX-3 251900003 (expired carbon monoxide) "
                "and the ppm in OBX-5, or 1110631000000106 for a declined test.",
                Location("OBX"),
            )
        )
    if problems:
        raise MessageNotAccepted(AckCode.error, problems)
    return [
        ReadingCreate.model_validate(
            {**fields, "nhs_number": number, "smoking_status": status, "pregnancy": pregnancy}
        )
        for fields in readings
        if fields is not None
    ]
