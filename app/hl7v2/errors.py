"""Why a message was not accepted, in the terms of an HL7 v2 ACK (MSA-1, ERR-2, ERR-3, ERR-8).

Texts say what was wrong and how to fix it; they never repeat a submitted value (values may be
patient data).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class AckCode(enum.StrEnum):
    accepted = "AA"
    error = "AE"  # the message was understood; its content is wrong or could not be stored
    rejected = "AR"  # the message could not be read, or is of a type exhale does not take


class ErrorCode(enum.Enum):
    """HL7 table 0357, message error condition codes."""

    segment_sequence = ("100", "Segment sequence error")
    required_field_missing = ("101", "Required field missing")
    data_type = ("102", "Data type error")
    table_value_not_found = ("103", "Table value not found")
    unsupported_message_type = ("200", "Unsupported message type")
    unsupported_event = ("201", "Unsupported event code")
    unsupported_version = ("203", "Unsupported version id")
    internal = ("207", "Application internal error")

    @property
    def number(self) -> str:
        return self.value[0]

    @property
    def label(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class Location:
    """ERR-2: where in the message (segment id, its sequence among those, field, component)."""

    segment: str
    sequence: int = 1
    field: int | None = None
    component: int | None = None


@dataclass(frozen=True)
class Problem:
    code: ErrorCode
    text: str
    location: Location | None = None


class MessageNotAccepted(Exception):
    """Nothing of the message is stored; the ACK carries ``ack_code`` and one ERR per problem."""

    def __init__(self, ack_code: AckCode, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.text for p in problems))
        self.ack_code = ack_code
        self.problems = problems


def rejected(code: ErrorCode, text: str, location: Location | None = None) -> MessageNotAccepted:
    return MessageNotAccepted(AckCode.rejected, [Problem(code, text, location)])


def error(code: ErrorCode, text: str, location: Location | None = None) -> MessageNotAccepted:
    return MessageNotAccepted(AckCode.error, [Problem(code, text, location)])
