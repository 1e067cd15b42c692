"""POST /hl7/v2: an ORU^R01 in, its ACK out, recorded as a REST-posted reading is."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.readings.models import Reading
from referral.models import OutboxMessage, Referral
from tests.app.access_world import ALL_ROLES, Side, build_side, headers_for
from tests.app.readings_helpers import at, counts, reading
from tests.hl7v2.messages import (
    EDD,
    NHS,
    OTHER_NHS,
    TODAY,
    ack_code,
    co_obx,
    oru,
    segments,
    smoking_obx,
)

HL7 = {"Content-Type": "x-application/hl7-v2+er7"}


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


@pytest.fixture
def epr(client: TestClient, session: Session, side: Side) -> dict[str, str]:
    return {**headers_for(client, session, side, "epr"), **HL7}


def _send(client: TestClient, headers: dict[str, str], text: str) -> str:
    response = client.post("/hl7/v2", content=text.encode(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("x-application/hl7-v2+er7")
    return response.text


def _referral_of(session: Session, reading_id: int) -> Referral:
    session.expire_all()
    found = session.get(Reading, reading_id)
    assert found is not None and found.referral_id is not None
    referral = session.get(Referral, found.referral_id)
    assert referral is not None
    return referral


def test_a_5_ppm_hl7_reading_makes_the_same_referral_as_a_rest_one(
    client: TestClient, session: Session, side: Side, epr: dict[str, str]
) -> None:
    rest = client.post(
        "/api/v1/readings",
        json=reading(on=TODAY, co_ppm=5, edd=EDD, nhs_number=OTHER_NHS, measured_at=at(TODAY, 0)),
        headers={"Authorization": epr["Authorization"]},
    )
    assert rest.status_code == 201, rest.text
    ack = _send(client, epr, oru())
    assert segments(ack)["MSA"][0][1:3] == ["AA", "MSG0001"]

    session.expire_all()
    by_hl7 = session.scalars(select(Reading).where(Reading.source_id.like("hl7v2:%"))).one()
    by_rest = session.get(Reading, rest.json()["id"])
    assert by_rest is not None
    assert (by_hl7.co_ppm, by_hl7.outcome, by_hl7.device_serial) == (5, "measured", "PB-104233")
    assert by_hl7.api_client_id == by_rest.api_client_id
    assert [a["code"] for a in by_hl7.advice] == [a["code"] for a in by_rest.advice]
    from_hl7, from_rest = _referral_of(session, by_hl7.id), _referral_of(session, by_rest.id)
    assert (from_hl7.status, from_hl7.reasons, from_hl7.service_id) == (
        from_rest.status,
        from_rest.reasons,
        from_rest.service_id,
    )
    assert from_hl7.reasons == ["co_elevated"]
    assert from_hl7.service_id == side.service.id
    events = session.scalars(
        select(OutboxMessage.event_type).where(OutboxMessage.referral_id == from_hl7.id)
    ).all()
    assert events == ["referral.created"]
    assert session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.record_type == "reading", AuditEvent.record_id == str(by_hl7.id))
    )


def test_a_resent_message_is_stored_once_and_gets_the_same_ack(
    client: TestClient, session: Session, epr: dict[str, str]
) -> None:
    message = oru(control_id="MSG-RESEND")
    first = segments(_send(client, epr, message))
    again = segments(_send(client, epr, message))
    assert first["MSA"] == again["MSA"] == [["MSA", "AA", "MSG-RESEND"]]
    assert first["MSH"][0][9] == again["MSH"][0][9]
    session.expire_all()
    assert counts(session)[0] == 1
    # Another message (another MSH-10) of the same test is another reading.
    assert ack_code(_send(client, epr, oru(control_id="MSG-NEXT", edd=None))) == "AA"
    assert counts(session)[0] == 2


def test_a_second_reading_needs_no_due_date(
    client: TestClient, session: Session, epr: dict[str, str]
) -> None:
    assert ack_code(_send(client, epr, oru(control_id="A1"))) == "AA"
    assert ack_code(_send(client, epr, oru(control_id="A2", edd=None))) == "AA"
    assert counts(session) == (2, 2)  # the side's woman, and hers


def test_without_a_current_pregnancy_or_a_due_date_the_ack_says_what_to_send(
    client: TestClient, session: Session, epr: dict[str, str]
) -> None:
    ack = segments(_send(client, epr, oru(edd=None)))
    assert ack["MSA"][0][1] == "AE"
    assert ack["ERR"][0][3].startswith("101^")
    assert "11778-8" in ack["ERR"][0][8]
    assert counts(session) == (0, 1)  # the side's woman only


BAD = {
    "non_numeric_obx5": (oru(obx=[co_obx(1, ppm="high")]), "AE", "OBX^1^5"),
    "percent_units": (oru(obx=[co_obx(1, units="%")]), "AE", "OBX^1^6"),
    "no_pid3": (oru(pid3=""), "AE", "PID^1^3"),
    "nhs_check_fails": (oru(pid3="9990000060^^^NHS^NH"), "AE", "PID^1^3"),
    "wrong_type": (oru(message_type="ADT^A01^ADT_A01"), "AR", "MSH^1^9^1^1"),
    "future_time": (
        oru(obx=[co_obx(1, observed_at="20991126101000+0000")]),
        "AE",
        "OBX^1^14",
    ),
    "not_hl7": ("this is not a message\r", "AR", "MSH^1"),
    "second_reading_bad": (
        oru(obx=[co_obx(1), co_obx(2, ppm="n/a")]),
        "AE",
        "OBX^2^5",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_answered_with_an_ae_or_ar_and_nothing_is_stored(
    client: TestClient, session: Session, epr: dict[str, str], case: str
) -> None:
    text, code, location = BAD[case]
    ack = segments(_send(client, epr, text))
    assert ack["MSA"][0][1] == code
    assert ack["ERR"][0][2] == location
    assert ack["ERR"][0][8]  # says what is wrong
    assert "9990000060" not in str(ack) and "Testpatient" not in str(ack)
    session.expire_all()
    assert counts(session) == (0, 1)  # the side's woman only
    assert session.scalar(select(func.count()).select_from(Referral)) == 1  # the side's own


def test_line_endings_and_content_types(
    client: TestClient, session: Session, epr: dict[str, str]
) -> None:
    for number, (ending, media_type) in enumerate(
        [("\n", "text/plain; charset=utf-8"), ("\r\n", "application/hl7-v2")]
    ):
        headers = {**epr, "Content-Type": media_type}
        assert ack_code(_send(client, headers, oru(control_id=f"E{number}", ending=ending))) == "AA"
    response = client.post(
        "/hl7/v2", content=oru().encode(), headers={**epr, "Content-Type": "application/json"}
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert counts(session)[0] == 2


def test_only_epr_clients_may_post_messages(
    client: TestClient, session: Session, side: Side
) -> None:
    assert client.post("/hl7/v2", content=oru().encode(), headers=HL7).status_code == 401
    for role in ALL_ROLES:
        headers = {**headers_for(client, session, side, role), **HL7}
        response = client.post("/hl7/v2", content=oru(control_id=role).encode(), headers=headers)
        expected = 200 if role == "epr" else 403
        assert response.status_code == expected, (role, response.text)
    other = build_side(session)
    headers = {**headers_for(client, session, other, "epr"), **HL7}
    # Each unit's client is its own sender: the same MSH-10 is another unit's message.
    assert ack_code(_send(client, headers, oru(control_id="epr", nhs_number=NHS))) == "AA"
    assert counts(session)[0] == 2


def test_a_declined_test_from_a_smoker_is_recorded_and_referred(
    client: TestClient, session: Session, epr: dict[str, str]
) -> None:
    declined = co_obx(1, code="1110631000000106^CO test declined^SCT", ppm="", units="")
    ack = _send(client, epr, oru(obx=[declined, smoking_obx(2)]))
    assert ack_code(ack) == "AA"
    session.expire_all()
    stored = session.scalars(select(Reading).where(Reading.source_id.like("hl7v2:%"))).one()
    assert (stored.outcome, stored.co_ppm, stored.smoking_status) == ("declined", None, "smoker")
    assert _referral_of(session, stored.id).reasons == ["self_reported_smoker"]


def test_a_wrong_pid_detail_is_named_without_its_value(
    client: TestClient, session: Session, epr: dict[str, str]
) -> None:
    text = oru().replace("LS1 4AP", "NOT A POSTCODE!")
    ack = segments(_send(client, epr, text))
    assert ack["MSA"][0][1] == "AE"
    assert ack["ERR"][0][2] == "PID^1^11^1^5"
    assert "NOT A POSTCODE" not in str(ack)
    assert counts(session) == (0, 1)
