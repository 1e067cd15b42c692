"""Reading ORU^R01 messages and building ACKs: pure functions, no database."""

from __future__ import annotations

import datetime as dt

import pytest

from app.hl7v2 import mapping
from app.hl7v2.ack import build_ack
from app.hl7v2.errors import AckCode, ErrorCode, Location, MessageNotAccepted, Problem
from app.hl7v2.parse import Header, parse_oru, read_header
from app.readings.models import ReadingOutcome, SmokingStatus
from tests.hl7v2.messages import EDD, NHS, co_obx, oru, segments, smoking_obx

NOW = dt.datetime(2026, 11, 26, 10, 15, tzinfo=dt.UTC)


def _readings(text: str) -> list[object]:
    return list(mapping.to_readings(parse_oru(text), allow_synthetic=True))


def _refusal(text: str) -> MessageNotAccepted:
    with pytest.raises(MessageNotAccepted) as caught:
        mapping.to_readings(parse_oru(text), allow_synthetic=True)
    return caught.value


@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"])
def test_every_segment_ending_gives_the_same_reading(ending: str) -> None:
    text = oru(ending=ending, obx=[co_obx(1, observed_at="20261126101000+0000")])
    [reading] = mapping.to_readings(parse_oru(text), allow_synthetic=True)
    assert reading.nhs_number == NHS
    assert reading.co_ppm == 5
    assert reading.outcome is ReadingOutcome.measured
    assert reading.measured_at == dt.datetime(2026, 11, 26, 10, 10, tzinfo=dt.UTC)
    assert reading.device_serial == "PB-104233"
    assert reading.source_id == "hl7v2:EPR/RXX:MSG0001:1"
    assert reading.pregnancy is not None
    assert reading.pregnancy.estimated_due_date == EDD
    assert reading.pregnancy.postcode == "LS1 4AP"
    assert reading.pregnancy.date_of_birth == dt.date(1994, 2, 17)


def test_a_time_without_an_offset_is_englands_local_time() -> None:
    summer = mapping.parse_time("202607011000")
    assert summer.astimezone(dt.UTC).hour == 9
    assert mapping.parse_time("20261201100000").astimezone(dt.UTC).hour == 10
    with pytest.raises(ValueError):
        mapping.parse_time("20261201")  # a day is not a test time


def test_smoking_status_and_a_declined_test_are_read() -> None:
    declined = co_obx(2, code="1110631000000106^CO test declined^SCT", ppm="", units="")
    readings = mapping.to_readings(
        parse_oru(oru(obx=[co_obx(1), declined, smoking_obx(3)])), allow_synthetic=True
    )
    assert [r.outcome for r in readings] == [ReadingOutcome.measured, ReadingOutcome.declined]
    assert {r.smoking_status for r in readings} == {SmokingStatus.smoker}
    assert [r.source_id for r in readings] == [
        "hl7v2:EPR/RXX:MSG0001:1",
        "hl7v2:EPR/RXX:MSG0001:2",
    ]


@pytest.mark.parametrize(
    ("obx", "field", "code"),
    [
        (co_obx(1, ppm="five"), "5", ErrorCode.data_type),
        (co_obx(1, ppm="5.5"), "5", ErrorCode.data_type),
        (co_obx(1, ppm=""), "5", ErrorCode.data_type),
        (co_obx(1, units="%"), "6", ErrorCode.table_value_not_found),
        (co_obx(1, status="P"), "11", ErrorCode.table_value_not_found),
        (co_obx(1, observed_at="yesterday"), "14", ErrorCode.data_type),
        (smoking_obx(1, code="12345^Unknown^SCT"), "5", ErrorCode.table_value_not_found),
    ],
)
def test_a_wrong_obx_is_an_error_naming_its_field(obx: str, field: str, code: ErrorCode) -> None:
    observations = [obx] if obx.startswith("OBX|1|NM") else [obx, co_obx(2)]
    refusal = _refusal(oru(obx=observations))
    assert refusal.ack_code is AckCode.error
    [problem] = refusal.problems
    assert problem.code is code
    assert problem.location is not None
    assert (problem.location.segment, str(problem.location.field)) == ("OBX", field)


@pytest.mark.parametrize(
    ("pid3", "code"),
    [
        ("", ErrorCode.required_field_missing),
        ("H123456^^^RXX^MR~H99^^^RXX^MR", ErrorCode.required_field_missing),
        ("9990000060^^^NHS^NH", ErrorCode.data_type),  # fails the check digit
        ("12345^^^NHS^NH", ErrorCode.data_type),
    ],
)
def test_pid3_must_carry_a_valid_nhs_number(pid3: str, code: ErrorCode) -> None:
    refusal = _refusal(oru(pid3=pid3))
    [problem] = refusal.problems
    assert problem.code is code
    assert problem.location == Location("PID", 1, 3)
    assert "9990000060" not in problem.text


def test_no_pid_and_no_co_obx_are_errors() -> None:
    no_pid = "\r".join(line for line in oru().split("\r") if not line.startswith("PID"))
    assert _refusal(no_pid).problems[0].location == Location("PID")
    assert _refusal(oru(obx=[], edd=None)).problems[0].code is ErrorCode.required_field_missing


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (oru(message_type="ADT^A01^ADT_A01"), ErrorCode.unsupported_message_type),
        (oru(message_type="ORU^R30"), ErrorCode.unsupported_event),
        (oru(control_id=""), ErrorCode.required_field_missing),
        ("PID|1||9990000069^^^NHS^NH\r", ErrorCode.segment_sequence),
        ("\x00\xff\x13 garbage", ErrorCode.segment_sequence),
    ],
)
def test_what_is_not_a_readable_oru_r01_is_rejected(text: str, code: ErrorCode) -> None:
    with pytest.raises(MessageNotAccepted) as caught:
        parse_oru(text)
    assert caught.value.ack_code is AckCode.rejected
    assert caught.value.problems[0].code is code


def test_the_ack_answers_the_sender_with_msa_and_err() -> None:
    header = read_header(oru(control_id="MSG42"))
    assert header is not None
    problem = Problem(ErrorCode.data_type, "OBX-5 must be a|number", Location("OBX", 2, 5))
    ack = segments(build_ack(header, AckCode.error, [problem], now=NOW))
    msh = ack["MSH"][0]
    assert msh[2:6] == ["EXHALE", "RXX", "EPR", "RXX"]  # sender and receiver swapped
    assert msh[8] == "ACK^R01^ACK"
    assert msh[9] == "ACKMSG42"
    assert ack["MSA"][0][1:3] == ["AE", "MSG42"]
    err = ack["ERR"][0]
    assert err[2] == "OBX^2^5"
    assert err[3] == "102^Data type error^HL70357"
    assert err[8] == "OBX-5 must be a\\F\\number"  # separators escaped


def test_an_ack_without_a_readable_header_is_still_an_ack() -> None:
    ack = segments(build_ack(None, AckCode.rejected, [], now=NOW))
    assert ack["MSH"][0][8] == "ACK^R01^ACK"
    assert ack["MSA"][0][1] == "AR"
    assert Header().field_separator == "|"


def test_a_long_sender_and_control_id_still_fit_source_id() -> None:
    header = Header(sending_application="A" * 300, control_id="C" * 199)
    assert len(mapping.source_id(header, 3)) <= 200
    assert mapping.source_id(header, 3) != mapping.source_id(header, 4)
