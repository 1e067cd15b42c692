"""Building the ACK (original acknowledgement mode): MSH, MSA, and one ERR per problem. Pure.

The ACK goes back to the sender (MSH-3/4 and MSH-5/6 swapped), echoes MSH-10 in MSA-2, and uses
the message's own separators. A re-sent message gets the same MSH-10 and MSA as the first time.
"""

from __future__ import annotations

import datetime as dt
import uuid

from app.hl7v2.errors import AckCode, Location, Problem
from app.hl7v2.parse import Header

OUR_APPLICATION = "EXHALE"
DEFAULT_VERSION = "2.5"
ACK_ID_MAX = 199


def _escaper(header: Header) -> dict[str, str]:
    separators = header.field_separator + header.encoding_characters
    names = "FSRET"  # field, component, repetition, escape, subcomponent
    escape = header.encoding_characters[2:3] or "\\"
    return {char: f"{escape}{name}{escape}" for char, name in zip(separators, names, strict=False)}


def escape(header: Header, text: str) -> str:
    """Text safe inside one HL7 field: separators escaped, line breaks as spaces."""
    table = _escaper(header)
    flat = " ".join(text.split())
    return "".join(table.get(char, char) for char in flat)


def _location(location: Location | None, component: str) -> str:
    if location is None:
        return ""
    parts = [location.segment, str(location.sequence)]
    if location.field is not None:
        parts.append(str(location.field))
        if location.component is not None:
            parts += ["1", str(location.component)]
    return component.join(parts)


def ack_control_id(header: Header | None) -> str:
    if header is not None and header.control_id:
        return f"ACK{header.control_id}"[:ACK_ID_MAX]
    return uuid.uuid4().hex[:20]


def build_ack(
    header: Header | None, code: AckCode, problems: list[Problem], *, now: dt.datetime
) -> str:
    """The ACK (``header`` None when no MSH could be read); segments end with ``\\r``."""
    h = header or Header()
    f = h.field_separator
    c = h.encoding_characters[0:1] or "^"
    trigger = h.trigger_event or "R01"
    msh = f.join(
        [
            "MSH",
            h.encoding_characters,
            h.receiving_application or OUR_APPLICATION,
            h.receiving_facility,
            h.sending_application,
            h.sending_facility,
            now.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S+0000"),
            "",
            c.join(["ACK", escape(h, trigger), "ACK"]),
            escape(h, ack_control_id(header)),
            escape(h, h.processing_id or "P"),
            escape(h, h.version or DEFAULT_VERSION),
        ]
    )
    summary = "; ".join(p.text for p in problems)
    msa = f.join(["MSA", code.value, escape(h, h.control_id), escape(h, summary[:80])])
    segments = [msh, msa.rstrip(f)]
    for problem in problems:
        err = [
            "ERR",
            "",
            _location(problem.location, c),
            c.join([problem.code.number, problem.code.label, "HL70357"]),
            "E",
            "",
            "",
            "",
            escape(h, problem.text),
        ]
        segments.append(f.join(err))
    return "".join(segment + "\r" for segment in segments)
