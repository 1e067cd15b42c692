"""Receiving an ORU^R01: recorded through the readings service, answered with an ACK.

The readings are recorded exactly as a REST-posted reading is (``app.readings.service.record``),
so the same rules, referrals and audit apply, all in the caller's one transaction. Nothing of a
message that is not accepted may be kept: the caller commits when ``accepted`` and rolls back
otherwise. Re-sends are recognised by each reading's ``source_id`` (sender, MSH-10, OBX position),
which is unique per API client: a re-sent message stores nothing new and gets the same ACK.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import ExhaleError, FieldError
from app.hl7v2 import mapping
from app.hl7v2.ack import build_ack
from app.hl7v2.errors import AckCode, ErrorCode, Location, MessageNotAccepted, Problem, rejected
from app.hl7v2.parse import Header, OruMessage, parse_oru, read_header
from app.identity import service as identity
from app.identity.models import ApiClient
from app.identity.principal import Principal
from app.logs import get_logger
from app.readings import service as readings

log = get_logger(__name__)

ROLES = frozenset({"epr"})
PREGNANCY_NEEDED = (
    "Your unit has no current pregnancy for this NHS number: send her estimated due date in an "
    "OBX with OBX-3 11778-8 (LOINC) and OBX-5 YYYYMMDD, and her name, date of birth, postcode "
    "and phone in the PID."
)
_READING_CODES = {mapping.CO_PPM, mapping.CO_TEST_DECLINED}


@dataclass(frozen=True)
class Received:
    ack: str
    code: AckCode
    readings_recorded: int = 0  # new readings stored (0 for a re-send)

    @property
    def accepted(self) -> bool:
        return self.code is AckCode.accepted


def _problems_of(error: ExhaleError, message: OruMessage) -> list[Problem]:
    """A readings-service error, named by where its field came from in the message."""
    first_co = next((o.index for o in message.observations if o.code in _READING_CODES), 1)
    where = {
        "nhs_number": Location("PID", 1, 3),
        "co_ppm": Location("OBX", first_co, 5),
        "measured_at": Location("OBX", first_co, 14),
        "stopped_smoking_on": Location("OBX", first_co),
        "device_serial": Location("OBX", first_co, 18),
    }
    fields = error.fields or [FieldError("", error.detail)]
    problems = []
    for field in fields:
        if field.field == "pregnancy":
            problems.append(Problem(ErrorCode.required_field_missing, PREGNANCY_NEEDED))
            continue
        location = where.get(field.field) or (
            Location("PID") if field.field.startswith("pregnancy") else None
        )
        text = f"{field.field.replace('_', ' ')} {field.message}".strip()
        problems.append(Problem(ErrorCode.data_type, text, location))
    return problems


def _record_all(
    session: Session,
    *,
    principal: Principal,
    message: OruMessage,
    settings: Settings,
    now: dt.datetime,
) -> int:
    bodies = mapping.to_readings(message, allow_synthetic=settings.synthetic_nhs_numbers_allowed)
    created = 0
    for body in bodies:
        try:
            recorded = readings.record(
                session, principal=principal, body=body, settings=settings, now=now
            )
        except ExhaleError as error:
            raise MessageNotAccepted(AckCode.error, _problems_of(error, message)) from None
        created += int(recorded.created)
    return created


def receive(
    session: Session, *, principal: Principal, text: str, settings: Settings, now: dt.datetime
) -> Received:
    """Record the message's readings and build its ACK. Never raises for bad input."""
    header: Header | None = None
    try:
        header = read_header(text)
        message = parse_oru(text)
        created = _record_all(
            session, principal=principal, message=message, settings=settings, now=now
        )
    except MessageNotAccepted as refusal:
        log.info(
            "hl7v2_not_accepted",
            ack_code=refusal.ack_code.value,
            errors=[p.code.number for p in refusal.problems],
        )
        return Received(
            build_ack(header, refusal.ack_code, refusal.problems, now=now), refusal.ack_code
        )
    log.info("hl7v2_accepted", readings_recorded=created)
    return Received(build_ack(header, AckCode.accepted, [], now=now), AckCode.accepted, created)


def unreadable(text: str, problem: str, *, now: dt.datetime) -> str:
    """An AR for input that is not a message exhale can read (framing, encoding, size)."""
    refusal = rejected(ErrorCode.segment_sequence, problem, Location("MSH"))
    return build_ack(read_header(text), AckCode.rejected, refusal.problems, now=now)


def internal_error(text: str, *, now: dt.datetime) -> str:
    """The AE for a failure of exhale's own: nothing was stored, the sender should retry."""
    problem = Problem(
        ErrorCode.internal,
        "exhale could not store the message just now and kept nothing of it: send it again "
        "later. If this persists, tell exhale's administrator.",
    )
    return build_ack(read_header(text), AckCode.error, [problem], now=now)


def principal_for_listener(session: Session, name: str) -> Principal:
    """The registered API client an MLLP listener speaks for: its organisation and role apply."""
    client = session.scalars(select(ApiClient).where(ApiClient.name == name)).first()
    if client is None or client.revoked_at is not None:
        raise ExhaleError(
            f"No active API client is called {name!r}: create one with `exhale apikey create "
            "--role epr` for the maternity unit, and name it with --client.",
            code="api_client_not_found",
        )
    if client.role not in ROLES:
        raise ExhaleError(
            f"The API client {name!r} has the {client.role} role; HL7 v2 messages need an "
            "epr client.",
            code="wrong_role",
        )
    return identity.principal_for_client(client)
