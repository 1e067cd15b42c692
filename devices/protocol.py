"""The exhale reference protocol for CO monitors: frames in, commands out, no I/O.

See ``devices/PROTOCOL.md`` for the wire format. Everything here is pure: bytes in, values out, or
a ``ProtocolError`` naming what was wrong. A line is never half-trusted: either every field is valid
and the checksum matches, or nothing from it is used.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

from devices.errors import ProtocolError
from devices.readings import CO_PPM_MAX, SEQUENCE_MAX, DeviceIdentity, Result

MAX_LINE = 256
"""Longest frame in bytes, from ``$`` to the checksum, terminator not counted."""

MAX_HOLD_S = 60
TERMINATOR = b"\r\n"

_SERIAL = re.compile(r"[A-Z0-9][A-Z0-9-]{0,31}")
_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/ -]{0,31}")
_CODE = re.compile(r"[A-Z0-9_]{1,24}")
_UINT = re.compile(r"0|[1-9][0-9]{0,8}")
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HEX2 = re.compile(rb"[0-9A-F]{2}")
_BOUNDARY = re.compile(rb"[\r\n$]")


class MonitorState(enum.StrEnum):
    """What the monitor is doing; the value is the word on the wire."""

    WARMING_UP = "WARMUP"
    ZEROING = "ZERO"
    READY = "READY"
    BREATH_HOLD = "HOLD"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class Status:
    """``hold_s`` is the breath-hold countdown in seconds (state BREATH_HOLD only, 0-60);
    ``error_code`` is the monitor's own fault code (state ERROR only)."""

    state: MonitorState
    hold_s: int | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class CommandReply:
    """The monitor's answer to a command: accepted (``OK``) or refused (``NO``) with a detail."""

    command: str
    accepted: bool
    detail: str = ""


Frame = DeviceIdentity | Status | Result | CommandReply
"""A frame from the monitor. A ``Result`` parsed from the wire has no model or firmware."""


@dataclass(frozen=True, slots=True)
class Identify:
    """Ask the monitor for its identity (answer: an ``ID`` frame)."""


@dataclass(frozen=True, slots=True)
class RequestStatus:
    """Ask the monitor for its state (answer: an ``ST`` frame)."""


@dataclass(frozen=True, slots=True)
class StartTest:
    """Start a breath test, as the monitor's button would (answer: ``OK,RUN`` or ``NO,RUN,...``)."""


@dataclass(frozen=True, slots=True)
class AckResult:
    """Tell the monitor result ``sequence`` is stored safely, so it may stop resending it."""

    sequence: int


@dataclass(frozen=True, slots=True)
class SetClock:
    """Set the monitor's clock (timezone-aware, whole seconds on the wire)."""

    at: dt.datetime


Command = Identify | RequestStatus | StartTest | AckResult | SetClock
COMMAND_WORDS = ("IDN", "STA", "RUN", "ACK", "TIM")
_BARE_COMMANDS: dict[str, Command] = {
    "IDN": Identify(),
    "STA": RequestStatus(),
    "RUN": StartTest(),
}


def checksum(payload: bytes) -> int:
    """XOR of every byte between ``$`` and ``*`` (as NMEA 0183 does)."""
    return reduce(lambda acc, byte: acc ^ byte, payload, 0)


def parse_frame(line: bytes) -> Frame:
    """Parse one line from a monitor (one trailing CR LF, CR or LF allowed).

    Raises ``ProtocolError`` for anything but a complete, valid frame: too long, non-ASCII, no or
    bad checksum, unknown type, wrong field count, or impossible values (ppm outside 0-500, sequence
    not a whole number in 1-999999999, battery outside 0-100, a time without UTC offset).
    """
    fields = _open_envelope(line)
    kind, args = fields[0], fields[1:]
    try:
        if kind == "ID":
            _arity(kind, args, 3)
            return DeviceIdentity(
                serial=_match(_SERIAL, args[0], "serial number"),
                model=_match(_TEXT, args[1], "model"),
                firmware=_match(_TEXT, args[2], "firmware"),
            )
        if kind == "ST":
            return _parse_status(args)
        if kind == "RS":
            return _parse_result(args)
        if kind in ("OK", "NO"):
            return _parse_reply(kind, args)
    except ProtocolError as error:
        raise ProtocolError(error.reason, line) from None
    except ValueError as error:  # a value the Result itself refuses
        raise ProtocolError(str(error), line) from None
    raise ProtocolError(f"unknown frame type {kind!r}", line)


def parse_command(line: bytes) -> Command:
    """Parse one command line from the host (what a monitor, or the simulator, receives)."""
    fields = _open_envelope(line)
    word, args = fields[0], fields[1:]
    try:
        if word in _BARE_COMMANDS:
            _arity(word, args, 0)
            return _BARE_COMMANDS[word]
        if word == "ACK":
            _arity(word, args, 1)
            return AckResult(_uint(args[0], "sequence", 1, SEQUENCE_MAX))
        if word == "TIM":
            _arity(word, args, 1)
            return SetClock(_time(args[0]))
    except ProtocolError as error:
        raise ProtocolError(error.reason, line) from None
    raise ProtocolError(f"unknown command {word!r}", line)


def encode_command(command: Command) -> bytes:
    """The line the host sends for ``command``, terminator included."""
    match command:
        case Identify():
            fields = ["IDN"]
        case RequestStatus():
            fields = ["STA"]
        case StartTest():
            fields = ["RUN"]
        case AckResult(sequence=sequence):
            fields = ["ACK", str(sequence)]
        case SetClock(at=at):
            fields = ["TIM", _format_time(at)]
    line = _envelope(fields)
    _self_check(parse_command, line)
    return line


def encode_frame(frame: Frame) -> bytes:
    """The line a monitor sends for ``frame``, terminator included (a Result's model and firmware
    are not on the wire: they come from the identity)."""
    match frame:
        case DeviceIdentity():
            fields = ["ID", frame.serial, frame.model, frame.firmware]
        case Status(state=state, hold_s=hold_s, error_code=code):
            fields = ["ST", state.value]
            fields += [str(hold_s)] if state is MonitorState.BREATH_HOLD else []
            fields += [code or ""] if state is MonitorState.ERROR else []
        case Result():
            fields = [
                "RS",
                frame.device_serial,
                str(frame.sequence),
                str(frame.co_ppm),
                _format_time(frame.measured_at),
                "" if frame.battery_percent is None else str(frame.battery_percent),
                "" if frame.calibration_due_on is None else frame.calibration_due_on.isoformat(),
            ]
        case CommandReply():
            fields = ["OK" if frame.accepted else "NO", frame.command]
            fields += [frame.detail] if frame.detail else []
    line = _envelope(fields)
    _self_check(parse_frame, line)
    return line


class LineSplitter:
    """Cuts a byte stream into lines, holding at most ``max_line + 1`` bytes whatever arrives.

    A line ends at CR, LF or CR LF; a ``$`` starts a new frame, so a frame cut short by a fault is
    returned on its own (and fails to parse) instead of spoiling the next one. Bytes past
    ``max_line`` are dropped until the next line end; the first ``max_line + 1`` are returned so
    that ``parse_frame`` reports the line as too long. Bytes not yet ended by a line end stay here.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held waiting for a line end."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        for boundary in _BOUNDARY.finditer(data):
            self._append(data[start : boundary.start()])
            self._flush(lines)
            if boundary.group() == b"$":
                self._append(b"$")
            start = boundary.end()
        self._append(data[start:])
        return lines

    def _append(self, chunk: bytes) -> None:
        room = self._max + 1 - len(self._buffer)
        if room > 0:
            self._buffer += chunk[:room]

    def _flush(self, lines: list[bytes]) -> None:
        if self._buffer:
            lines.append(bytes(self._buffer))
            self._buffer.clear()


def _open_envelope(line: bytes) -> list[str]:
    """Check the ``$payload*XX`` envelope and return the payload's comma-separated fields."""
    if len(line) > MAX_LINE + len(TERMINATOR):
        raise ProtocolError(f"line too long ({len(line)} bytes, at most {MAX_LINE})", line)
    body = line.removesuffix(b"\n").removesuffix(b"\r")
    if len(body) > MAX_LINE:
        raise ProtocolError(f"line too long ({len(body)} bytes, at most {MAX_LINE})", line)
    if not body:
        raise ProtocolError("empty line", line)
    for position, byte in enumerate(body):
        if not 0x20 <= byte <= 0x7E:
            raise ProtocolError(
                f"non-ASCII or control byte 0x{byte:02X} at position {position}", line
            )
    if not body.startswith(b"$"):
        raise ProtocolError("does not start with '$'", line)
    if len(body) < 4 or body[-3:-2] != b"*":
        raise ProtocolError("no checksum ('*XX' at the end): truncated frame?", line)
    given = body[-2:]
    if not _HEX2.fullmatch(given):
        raise ProtocolError("checksum is not two upper-case hex digits", line)
    payload = body[1:-3]
    if b"$" in payload or b"*" in payload:
        raise ProtocolError("'$' or '*' inside a frame", line)
    expected = checksum(payload)
    if int(given, 16) != expected:
        raise ProtocolError(
            f"bad checksum: frame says {given.decode()}, content gives {expected:02X}", line
        )
    return payload.decode("ascii").split(",")


def _parse_status(args: list[str]) -> Status:
    if not args:
        raise ProtocolError("status frame without a state")
    try:
        state = MonitorState(args[0])
    except ValueError:
        raise ProtocolError(f"unknown monitor state {args[0]!r}") from None
    if state is MonitorState.BREATH_HOLD:
        _arity("ST,HOLD", args[1:], 1)
        return Status(state, hold_s=_uint(args[1], "breath-hold seconds", 0, MAX_HOLD_S))
    if state is MonitorState.ERROR:
        _arity("ST,ERROR", args[1:], 1)
        return Status(state, error_code=_match(_CODE, args[1], "error code"))
    _arity(f"ST,{state.value}", args[1:], 0)
    return Status(state)


def _parse_result(args: list[str]) -> Result:
    _arity("RS", args, 6)
    serial, sequence, ppm, measured_at, battery, due = args
    return Result(
        device_serial=_match(_SERIAL, serial, "serial number"),
        sequence=_uint(sequence, "sequence", 1, SEQUENCE_MAX),
        co_ppm=_uint(ppm, "co_ppm", 0, CO_PPM_MAX),
        measured_at=_time(measured_at),
        battery_percent=_uint(battery, "battery percent", 0, 100) if battery else None,
        calibration_due_on=_date(due) if due else None,
    )


def _parse_reply(kind: str, args: list[str]) -> CommandReply:
    if not args or args[0] not in COMMAND_WORDS:
        raise ProtocolError(f"{kind} frame names no known command")
    if len(args) > 2:
        raise ProtocolError(f"{kind} frame has {len(args) + 1} fields, expected at most 3")
    detail = _match(_CODE, args[1], "detail") if len(args) == 2 else ""
    if kind == "NO" and not detail:
        raise ProtocolError("NO frame without a reason")
    return CommandReply(command=args[0], accepted=kind == "OK", detail=detail)


def _arity(kind: str, args: list[str], count: int) -> None:
    if len(args) != count:
        raise ProtocolError(f"{kind} has {len(args)} fields after its type, expected {count}")


def _match(pattern: re.Pattern[str], text: str, name: str) -> str:
    if not pattern.fullmatch(text):
        raise ProtocolError(f"{name} {text!r} is not valid")
    return text


def _uint(text: str, name: str, low: int, high: int) -> int:
    if not _UINT.fullmatch(text):
        raise ProtocolError(f"{name} {text!r} is not a whole number")
    value = int(text)
    if not low <= value <= high:
        raise ProtocolError(f"{name} {value} is outside {low}-{high}")
    return value


def _time(text: str) -> dt.datetime:
    if not _TIME.fullmatch(text):
        raise ProtocolError(
            f"time {text!r} is not YYYY-MM-DDThh:mm:ss with a UTC offset (Z or +hh:mm)"
        )
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ProtocolError(f"time {text!r} is not a real time") from None


def _date(text: str) -> dt.date:
    if not _DATE.fullmatch(text):
        raise ProtocolError(f"date {text!r} is not YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ProtocolError(f"date {text!r} is not a real date") from None


def _format_time(at: dt.datetime) -> str:
    if at.utcoffset() is None:
        raise ValueError("a time on the wire needs a UTC offset")
    return at.replace(microsecond=0).isoformat()


def _envelope(fields: list[str]) -> bytes:
    payload = ",".join(fields).encode("ascii")
    return b"$" + payload + b"*" + f"{checksum(payload):02X}".encode() + TERMINATOR


def _self_check(parse: Callable[[bytes], object], line: bytes) -> None:
    """Refuse to emit a line our own parser would reject: encoder and parser cannot drift."""
    try:
        parse(line)
    except ProtocolError as error:
        raise ValueError(f"cannot encode: {error.reason}") from None
