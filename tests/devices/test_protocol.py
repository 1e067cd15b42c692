"""The reference protocol: round trips, and every way a line can be wrong."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import ProtocolError
from devices.protocol import (
    MAX_LINE,
    AckResult,
    CommandReply,
    Identify,
    LineSplitter,
    MonitorState,
    RequestStatus,
    SetClock,
    StartTest,
    Status,
    encode_command,
    encode_frame,
    parse_command,
    parse_frame,
)
from devices.readings import DeviceIdentity, Result
from tests.devices.helpers import frame

WHEN = dt.datetime(2025, 3, 1, 10, 15, 30, tzinfo=dt.UTC)
RESULT = Result("SIM-0001", 42, 7, WHEN, 87, dt.date(2026, 1, 31))
RESULT_LINE = b"$RS,SIM-0001,42,7,2025-03-01T10:15:30+00:00,87,2026-01-31*05\r\n"


def test_a_result_frame_reads_as_the_documented_example() -> None:
    assert encode_frame(RESULT) == RESULT_LINE
    assert parse_frame(RESULT_LINE) == RESULT


@pytest.mark.parametrize(
    "value",
    [
        DeviceIdentity("SIM-0001", "piCO Smokerlyzer", "2.1.0"),
        Status(MonitorState.WARMING_UP),
        Status(MonitorState.ZEROING),
        Status(MonitorState.READY),
        Status(MonitorState.BREATH_HOLD, hold_s=15),
        Status(MonitorState.ERROR, error_code="E07"),
        CommandReply("ACK", True, "42"),
        CommandReply("RUN", False, "NOT_READY"),
        Result("A1", 1, 0, WHEN),
        Result("A1", 999_999_999, 500, WHEN.astimezone(dt.timezone(dt.timedelta(hours=1)))),
    ],
)
def test_frames_round_trip(value: object) -> None:
    assert parse_frame(encode_frame(value)) == value  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "command",
    [Identify(), RequestStatus(), StartTest(), AckResult(42), SetClock(WHEN)],
)
def test_commands_round_trip(command: object) -> None:
    assert parse_command(encode_command(command)) == command  # type: ignore[arg-type]


@pytest.mark.parametrize("ending", [b"\r\n", b"\r", b"\n", b""])
def test_any_line_end_is_accepted(ending: bytes) -> None:
    assert parse_frame(RESULT_LINE.removesuffix(b"\r\n") + ending) == RESULT


def test_a_time_in_z_form_is_accepted() -> None:
    parsed = parse_frame(frame("RS,SIM-0001,3,4,2025-03-01T10:15:30Z,50,2026-01-31"))
    assert isinstance(parsed, Result)
    assert parsed.measured_at == WHEN


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (RESULT_LINE.replace(b"*05", b"*06"), "bad checksum"),
        (RESULT_LINE.replace(b"*05", b"*0a"), "upper-case hex"),
        (RESULT_LINE.replace(b",7,", b",8,"), "bad checksum"),
        (RESULT_LINE[:30], "no checksum"),
        (RESULT_LINE[1:], "does not start with '$'"),
        (b"\r\n", "empty line"),
        (RESULT_LINE.replace(b"SIM", b"S\xc9M"), "non-ASCII"),
        (RESULT_LINE.replace(b"SIM", b"S\x00M"), "control byte"),
        (b"$" + b"A" * 300 + b"*00\r\n", "too long"),
        (frame("ZZ,1,2"), "unknown frame type"),
        (frame("RS,SIM-0001,42,-3,2025-03-01T10:15:30Z,87,2026-01-31"), "co_ppm"),
        (frame("RS,SIM-0001,42,501,2025-03-01T10:15:30Z,87,2026-01-31"), "outside 0-500"),
        (frame("RS,SIM-0001,42,7.5,2025-03-01T10:15:30Z,87,2026-01-31"), "not a whole number"),
        (frame("RS,SIM-0001,4x,7,2025-03-01T10:15:30Z,87,2026-01-31"), "sequence"),
        (frame("RS,SIM-0001,0,7,2025-03-01T10:15:30Z,87,2026-01-31"), "sequence 0"),
        (frame("RS,SIM-0001,1e3,7,2025-03-01T10:15:30Z,87,2026-01-31"), "sequence"),
        (frame("RS,SIM-0001,007,7,2025-03-01T10:15:30Z,87,2026-01-31"), "sequence"),
        (frame("RS,SIM-0001,42,7,2025-03-01T10:15:30,87,2026-01-31"), "UTC offset"),
        (frame("RS,SIM-0001,42,7,2025-02-30T10:15:30Z,87,2026-01-31"), "not a real time"),
        (frame("RS,SIM-0001,42,7,2025-03-01T10:15:30Z,101,2026-01-31"), "battery"),
        (frame("RS,SIM-0001,42,7,2025-03-01T10:15:30Z,87,31/01/2026"), "date"),
        (frame("RS,SIM-0001,42,7,2025-03-01T10:15:30Z,87"), "expected 6"),
        (frame("RS,sim 1,42,7,2025-03-01T10:15:30Z,87,2026-01-31"), "serial number"),
        (frame("ST,HOLD,61"), "breath-hold seconds"),
        (frame("ST,SLEEPING"), "unknown monitor state"),
        (frame("ST,READY,1"), "expected 0"),
        (frame("NO,RUN"), "without a reason"),
        (b"$RS,1$ID,A,B,C*00\r\n", "'$' or '*' inside"),
    ],
)
def test_a_bad_line_is_a_protocol_error_with_a_reason(line: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_frame(line)
    assert reason in raised.value.reason


def test_a_64_kb_line_is_refused_at_once() -> None:
    with pytest.raises(ProtocolError, match="too long"):
        parse_frame(b"$" + b"1" * 65_536 + b"\r\n")


def test_a_command_frame_from_a_monitor_is_an_unknown_type() -> None:
    with pytest.raises(ProtocolError, match="unknown frame type"):
        parse_frame(encode_command(Identify()))
    with pytest.raises(ProtocolError, match="unknown command"):
        parse_command(RESULT_LINE)


def test_encoding_an_impossible_value_fails_loudly() -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        encode_frame(DeviceIdentity("lower-case", "m", "f"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_is_a_protocol_error_never_a_result(data: bytes) -> None:
    try:
        parsed = parse_frame(data)
    except ProtocolError:
        return
    assert not isinstance(parsed, Result), f"garbage became a reading: {data!r}"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120))
def test_a_good_checksum_on_random_fields_never_makes_an_impossible_reading(text: str) -> None:
    line = frame("RS," + text.replace("$", "").replace("*", ""))
    try:
        parsed = parse_frame(line)
    except ProtocolError:
        return
    assert isinstance(parsed, Result)
    assert 0 <= parsed.co_ppm <= 500
    assert parse_frame(encode_frame(parsed)) == parsed


results = st.builds(
    Result,
    device_serial=st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,31}", fullmatch=True),
    sequence=st.integers(1, 999_999_999),
    co_ppm=st.integers(0, 500),
    measured_at=st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2099, 12, 31),
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5, minutes=-30))]),
    ).map(lambda t: t.replace(microsecond=0)),
    battery_percent=st.none() | st.integers(0, 100),
    calibration_due_on=st.none() | st.dates(),
)


@settings(max_examples=200, deadline=None)
@given(results)
def test_results_round_trip(result: Result) -> None:
    assert parse_frame(encode_frame(result)) == result


@settings(max_examples=300, deadline=None)
@given(results, st.data())
def test_any_single_changed_byte_is_detected(result: Result, data: st.DataObject) -> None:
    line = encode_frame(result).removesuffix(b"\r\n")
    position = data.draw(st.integers(0, len(line) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != line[position]))
    with pytest.raises(ProtocolError):
        parse_frame(line[:position] + bytes([byte]) + line[position + 1 :])


def test_the_splitter_waits_for_a_line_end() -> None:
    splitter = LineSplitter()
    assert splitter.feed(RESULT_LINE[:-2]) == []
    assert splitter.pending == len(RESULT_LINE) - 2
    assert splitter.feed(b"\r\n") == [RESULT_LINE[:-2]]
    assert splitter.pending == 0


def test_the_splitter_handles_every_line_end_and_skips_empty_lines() -> None:
    body = RESULT_LINE[:-2]
    lines = LineSplitter().feed(body + b"\r\n\r\n" + body + b"\n" + body + b"\r" + body + b"\n\r")
    assert lines == [body] * 4


def test_a_frame_cut_short_does_not_spoil_the_next() -> None:
    lines = LineSplitter().feed(RESULT_LINE[:25] + RESULT_LINE)
    assert lines == [RESULT_LINE[:25], RESULT_LINE[:-2]]
    with pytest.raises(ProtocolError, match="no checksum"):
        parse_frame(lines[0])
    assert parse_frame(lines[1]) == RESULT


def test_a_64_kb_line_is_discarded_in_bounded_memory() -> None:
    splitter = LineSplitter()
    lines: list[bytes] = []
    for _ in range(64):
        lines += splitter.feed(b"x" * 1024)
        assert splitter.pending <= MAX_LINE + 1
    lines += splitter.feed(b"\r\n" + RESULT_LINE)
    assert len(lines) == 2
    with pytest.raises(ProtocolError, match="too long"):
        parse_frame(lines[0])
    assert parse_frame(lines[1]) == RESULT


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=20))
def test_the_splitter_never_holds_more_than_one_line(chunks: list[bytes]) -> None:
    splitter = LineSplitter()
    for chunk in chunks:
        for line in splitter.feed(chunk):
            assert 0 < len(line) <= MAX_LINE + 1
        assert splitter.pending <= MAX_LINE + 1
