"""Reading an ORU^R01 message with python-hl7: pure, text in and values out.

Segments may end with ``\\r`` (the standard), ``\\n`` or ``\\r\\n``; blank lines are ignored.
Only what exhale uses is read: MSH, the first PID, the first OBR's observation time, and every
OBX. Anything else (PV1, ORC, NTE, ...) is allowed and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hl7  # type: ignore[import-untyped]

from app.hl7v2.errors import ErrorCode, Location, rejected

DEFAULT_ENCODING_CHARACTERS = "^~\\&"


@dataclass(frozen=True)
class Header:
    """MSH: who sent the message, what it is, and its control id (MSH-10)."""

    field_separator: str = "|"
    encoding_characters: str = DEFAULT_ENCODING_CHARACTERS
    sending_application: str = ""  # MSH-3..6 as sent (with components), echoed in the ACK
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_code: str = ""  # MSH-9.1
    trigger_event: str = ""  # MSH-9.2
    control_id: str = ""  # MSH-10
    processing_id: str = ""  # MSH-11
    version: str = ""  # MSH-12


@dataclass(frozen=True)
class Patient:
    """PID: the identifiers of PID-3 as (id, assigning authority, identifier type code)."""

    identifiers: tuple[tuple[str, str, str], ...]
    family_name: str
    given_name: str
    date_of_birth: str  # PID-7, an HL7 DTM
    postcode: str  # PID-11.5
    phone: str  # PID-13.1


@dataclass(frozen=True)
class Observation:
    """OBX: ``index`` is its position among the message's OBX segments, from 1."""

    index: int
    value_type: str  # OBX-2
    code: str  # OBX-3.1
    value: str  # OBX-5, first component (the code of a coded value)
    units: str  # OBX-6.1
    status: str  # OBX-11
    observed_at: str  # OBX-14, an HL7 DTM
    equipment: str  # OBX-18.1


@dataclass(frozen=True)
class OruMessage:
    header: Header
    patient: Patient | None
    observations: tuple[Observation, ...]
    requested_at: str  # OBR-7 of the first OBR: the time when an OBX has no OBX-14


def normalise(text: str) -> str:
    """One ``\\r`` after each segment, whatever line endings the sender used."""
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return "\r".join(line for line in lines if line.strip())


def _get(message: Any, segment: Any, field: int, repetition: int = 1, component: int = 1) -> str:
    try:
        value = segment.extract_field(1, field, repetition, component, 1)
    except IndexError:  # the path goes below a plain value: that component is empty
        return ""
    return str(message.unescape(str(value))).strip()


def _raw(segment: Any, field: int) -> str:
    return str(segment(field)) if len(segment) > field else ""


def _load(text: str) -> Any:
    if not text.startswith("MSH") or len(text) < 8:
        raise rejected(
            ErrorCode.segment_sequence,
            "The message must begin with an MSH segment (MSH|^~\\&|...).",
            Location("MSH"),
        )
    try:
        return hl7.parse(text)
    except Exception:  # python-hl7 raises several kinds on malformed text
        raise rejected(
            ErrorCode.segment_sequence,
            "The message could not be read as HL7 v2 (ER7): check the MSH segment and the "
            "encoding characters.",
            Location("MSH"),
        ) from None


def _header(message: Any) -> Header:
    msh = message.segment("MSH")
    return Header(
        field_separator=_raw(msh, 1) or "|",
        encoding_characters=_raw(msh, 2) or DEFAULT_ENCODING_CHARACTERS,
        sending_application=_raw(msh, 3),
        sending_facility=_raw(msh, 4),
        receiving_application=_raw(msh, 5),
        receiving_facility=_raw(msh, 6),
        message_code=_get(message, msh, 9, 1, 1),
        trigger_event=_get(message, msh, 9, 1, 2),
        control_id=_get(message, msh, 10),
        processing_id=_get(message, msh, 11),
        version=_get(message, msh, 12),
    )


def read_header(text: str) -> Header | None:
    """The MSH of any text, when it has a readable one: used to address an ACK. Never raises."""
    try:
        return _header(_load(normalise(text)))
    except Exception:
        return None


def _patient(message: Any, pid: Any) -> Patient:
    identifiers = []
    field = pid(3) if len(pid) > 3 else []
    for repetition in range(1, len(field) + 1):
        identifiers.append(
            (
                _get(message, pid, 3, repetition, 1),
                _get(message, pid, 3, repetition, 4),
                _get(message, pid, 3, repetition, 5),
            )
        )
    return Patient(
        identifiers=tuple(i for i in identifiers if any(i)),
        family_name=_get(message, pid, 5, 1, 1),
        given_name=_get(message, pid, 5, 1, 2),
        date_of_birth=_get(message, pid, 7),
        postcode=_get(message, pid, 11, 1, 5),
        phone=_get(message, pid, 13, 1, 1),
    )


def _observation(message: Any, index: int, obx: Any) -> Observation:
    return Observation(
        index=index,
        value_type=_get(message, obx, 2).upper(),
        code=_get(message, obx, 3, 1, 1),
        value=_get(message, obx, 5, 1, 1),
        units=_get(message, obx, 6, 1, 1),
        status=_get(message, obx, 11).upper(),
        observed_at=_get(message, obx, 14),
        equipment=_get(message, obx, 18, 1, 1),
    )


def _check_type(header: Header) -> None:
    if header.message_code != "ORU":
        raise rejected(
            ErrorCode.unsupported_message_type,
            "exhale takes ORU^R01 (observation result) messages only; send the CO reading "
            "as ORU^R01.",
            Location("MSH", 1, 9, 1),
        )
    if header.trigger_event != "R01":
        raise rejected(
            ErrorCode.unsupported_event,
            "exhale takes the R01 event of ORU only (MSH-9 ORU^R01).",
            Location("MSH", 1, 9, 2),
        )
    if not header.control_id:
        raise rejected(
            ErrorCode.required_field_missing,
            "MSH-10 (message control id) is required: exhale uses it to recognise re-sends.",
            Location("MSH", 1, 10),
        )
    if not header.version.startswith("2."):
        raise rejected(
            ErrorCode.unsupported_version,
            "MSH-12 must name an HL7 version 2.x (for example 2.5).",
            Location("MSH", 1, 12),
        )


def parse_oru(text: str) -> OruMessage:
    """Read an ORU^R01, or raise :class:`MessageNotAccepted` (AR) saying why it cannot be read."""
    message = _load(normalise(text))
    header = _header(message)
    _check_type(header)
    segments = {
        name: [s for s in message if str(s(0) if len(s) else "") == name]
        for name in ("PID", "OBR", "OBX")
    }
    obr = segments["OBR"][0] if segments["OBR"] else None
    return OruMessage(
        header=header,
        patient=_patient(message, segments["PID"][0]) if segments["PID"] else None,
        observations=tuple(
            _observation(message, index, obx) for index, obx in enumerate(segments["OBX"], 1)
        ),
        requested_at=_get(message, obr, 7) if obr is not None else "",
    )
