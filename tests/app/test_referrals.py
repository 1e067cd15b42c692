"""Every woman who should be referred is, once; advisors work the queue to an outcome."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.clock import local_today
from referral.models import ServiceArea
from referral.sla import first_contact_due
from tests import factories
from tests.app.access_world import Side, build_side, headers_for, post_referral_event, sign_in
from tests.app.readings_helpers import due_for, reading

TODAY = local_today()
BOOKING_DAY = TODAY - dt.timedelta(days=60)
EDD = due_for(84, BOOKING_DAY)


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


def _post_reading(client: TestClient, headers: dict[str, str], **kw: Any) -> dict[str, Any]:
    kw.setdefault("on", BOOKING_DAY)
    response = client.post("/api/v1/readings", json=reading(**kw), headers=headers)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def _advisor(client: TestClient, session: Session, side: Side) -> dict[str, str]:
    csrf = sign_in(client, session, side.users["advisor"])
    return {"X-CSRF-Token": csrf}


def test_an_elevated_reading_opens_a_routed_referral_with_an_sla(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    answer = _post_reading(client, epr, edd=EDD, co_ppm=6, smoking_status="non_smoker")
    referral = answer["referral"]
    assert referral["status"] == "pending"
    assert referral["reasons"] == ["co_elevated"]
    assert [a["code"] for a in answer["advice"]] == ["co_source_check", "referral_made"]

    advisor = _advisor(client, session, side)
    detail = client.get(f"/api/v1/referrals/{referral['id']}", headers=advisor).json()
    assert detail["service_code"] == side.service.code
    opened = dt.datetime.fromisoformat(detail["opened_at"])
    assert dt.datetime.fromisoformat(detail["first_contact_due_at"]) == first_contact_due(opened)
    assert detail["woman"]["phone"] == "07700 900123"
    assert detail["latest_reading"]["co_ppm"] == 6
    assert [e["kind"] for e in detail["events"]] == ["created"]
    assert detail["policy_version"].startswith("r1-")


def test_a_new_trigger_adds_to_the_open_referral_instead_of_a_second_one(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    first = _post_reading(client, epr, edd=EDD, co_ppm=6)
    second = _post_reading(
        client, epr, on=BOOKING_DAY + dt.timedelta(days=14), co_ppm=1, smoking_status="smoker"
    )
    assert second["referral"]["id"] == first["referral"]["id"]
    assert second["referral"]["reasons"] == ["co_elevated", "self_reported_smoker"]
    advisor = _advisor(client, session, side)
    detail = client.get(f"/api/v1/referrals/{first['referral']['id']}", headers=advisor).json()
    assert [e["kind"] for e in detail["events"]] == ["created", "reason_added"]


def test_a_normal_reading_from_a_non_smoker_refers_no_one(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    answer = _post_reading(client, epr, edd=EDD, co_ppm=2, smoking_status="non_smoker")
    assert answer["referral"] is None


def test_a_smoker_who_declines_the_test_is_still_referred(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    answer = _post_reading(
        client, epr, edd=EDD, co_ppm=None, outcome="declined", smoking_status="smoker"
    )
    assert answer["referral"]["reasons"] == ["self_reported_smoker"]
    assert [a["code"] for a in answer["advice"]] == ["declined_test", "referral_made"]


def test_referrals_route_by_postcode_district(
    client: TestClient, session: Session, side: Side
) -> None:
    leeds = factories.make_service(session)
    session.add(ServiceArea(unit_id=side.unit.id, postcode_district="LS1", service_id=leeds.id))
    session.flush()
    epr = headers_for(client, session, side, "epr")
    answer = _post_reading(client, epr, edd=EDD, co_ppm=8)
    midwife = headers_for(client, session, side, "midwife")
    detail = client.get(f"/api/v1/referrals/{answer['referral']['id']}", headers=midwife).json()
    assert detail["service_code"] == leeds.code


def test_opt_out_at_the_appointment_then_offered_again(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    first = _post_reading(client, epr, edd=EDD, co_ppm=5)
    midwife = {"X-CSRF-Token": sign_in(client, session, side.users["midwife"])}
    opted = post_referral_event(
        client, midwife, first["referral"]["id"], kind="opt_out", reason="wants to stop on her own"
    )
    assert opted.status_code == 201, opted.text
    assert opted.json()["status"] == "opted_out"
    assert opted.json()["closed_at"] is not None

    not_allowed = post_referral_event(
        client, midwife, first["referral"]["id"], kind="contact_attempt", reached=True
    )
    assert not_allowed.status_code == 403

    later = _post_reading(
        client, epr, on=BOOKING_DAY + dt.timedelta(days=28), co_ppm=2, smoking_status="non_smoker"
    )
    assert later["referral"] is None
    assert "offer_referral" in [a["code"] for a in later["advice"]]

    elevated = _post_reading(client, epr, on=BOOKING_DAY + dt.timedelta(days=35), co_ppm=7)
    assert elevated["referral"]["id"] != first["referral"]["id"]
    assert elevated["referral"]["status"] == "pending"


def test_an_advisor_works_a_referral_to_its_28_day_outcome(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    referral_id = _post_reading(client, epr, edd=EDD, co_ppm=9)["referral"]["id"]
    advisor = _advisor(client, session, side)
    quit_on = local_today()  # not before the day the referral opened, even across midnight
    steps: list[dict[str, Any]] = [
        {"kind": "contact_attempt", "reached": True},
        {"kind": "assessment", "note": "smokes 10 a day; partner smokes"},
        {"kind": "treatment_issued", "treatment": "nrt_combination"},
        {"kind": "quit_date_set", "quit_date": quit_on.isoformat()},
        {"kind": "outcome_check", "stage": "28_day", "result": "co_confirmed_quit", "co_ppm": 2},
    ]
    statuses = []
    for step in steps:
        response = post_referral_event(client, advisor, referral_id, **step)
        assert response.status_code == 201, response.text
        statuses.append(response.json()["status"])
    assert statuses == ["contacted", "engaged", "engaged", "quit_date_set", "outcome_28_day"]
    detail = client.get(f"/api/v1/referrals/{referral_id}", headers=advisor).json()
    assert detail["quit_date"] == quit_on.isoformat()
    assert detail["last_outcome_result"] == "co_confirmed_quit"
    by_kind = {e["kind"]: e for e in detail["events"]}
    assert by_kind["treatment_issued"]["data"] == {"treatment": "nrt_combination"}
    assert by_kind["assessment"]["data"] == {"note": "smokes 10 a day; partner smokes"}
    assert by_kind["assessment"]["actor_name"] == side.users["advisor"].username


@pytest.mark.parametrize(
    ("steps", "last", "status", "field_or_message"),
    [
        ([], {"kind": "quit_date_set", "quit_date": "2026-01-01"}, 409, "allowed: contact_attempt"),
        (
            [{"kind": "contact_attempt", "reached": True}, {"kind": "assessment"}],
            {"kind": "quit_date_set", "quit_date": "2000-01-01"},
            422,
            "quit_date",
        ),
        (
            [{"kind": "contact_attempt", "reached": True}, {"kind": "assessment"}],
            {"kind": "outcome_check", "stage": "28_day", "result": "smoking"},
            422,
            "quit_date",
        ),
        (
            [],
            {"kind": "outcome_check", "stage": "28_day", "result": "smoking", "co_ppm": 501},
            422,
            "co_ppm",
        ),
        ([], {"kind": "teleport"}, 422, "kind"),
    ],
)
def test_illegal_moves_and_bad_events_say_what_is_wrong(
    client: TestClient,
    session: Session,
    side: Side,
    steps: list[dict[str, Any]],
    last: dict[str, Any],
    status: int,
    field_or_message: str,
) -> None:
    epr = headers_for(client, session, side, "epr")
    referral_id = _post_reading(client, epr, edd=EDD, co_ppm=9)["referral"]["id"]
    advisor = _advisor(client, session, side)
    for step in steps:
        assert post_referral_event(client, advisor, referral_id, **step).status_code == 201
    response = post_referral_event(client, advisor, referral_id, **last)
    assert response.status_code == status, response.text
    body = response.json()
    if status == 409:
        assert field_or_message in body["detail"]
    else:
        assert field_or_message in [f["field"].split(".")[-1] for f in body["fields"]]


def test_a_stale_version_is_a_conflict_and_a_missing_one_is_required(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    referral_id = _post_reading(client, epr, edd=EDD, co_ppm=9)["referral"]["id"]
    advisor = _advisor(client, session, side)
    url = f"/api/v1/referrals/{referral_id}/events"
    etag = client.get(f"/api/v1/referrals/{referral_id}", headers=advisor).headers["etag"]
    first = client.post(
        url,
        json={"kind": "contact_attempt", "reached": False},
        headers={**advisor, "If-Match": etag},
    )
    second = client.post(
        url,
        json={"kind": "contact_attempt", "reached": True},
        headers={**advisor, "If-Match": etag},
    )
    assert (first.status_code, second.status_code) == (201, 409)
    assert second.json()["error"] == "version_conflict"
    missing = client.post(url, json={"kind": "contact_attempt", "reached": True}, headers=advisor)
    assert missing.status_code == 428
    in_body = client.post(
        url,
        json={"kind": "contact_attempt", "reached": True, "version": first.json()["version"]},
        headers=advisor,
    )
    assert in_body.status_code == 201


def test_three_failed_attempts_hand_her_back_and_she_is_referred_again(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    referral_id = _post_reading(client, epr, edd=EDD, co_ppm=9)["referral"]["id"]
    advisor = _advisor(client, session, side)
    for _ in range(3):
        response = post_referral_event(
            client, advisor, referral_id, kind="contact_attempt", reached=False
        )
    assert response.json()["status"] == "uncontactable"

    midwife = headers_for(client, session, side, "midwife")
    handed_back = client.get(
        "/api/v1/referrals", params={"handed_back": "true"}, headers=midwife
    ).json()
    assert [i["id"] for i in handed_back["items"]] == [referral_id]

    again = _post_reading(
        client, epr, on=BOOKING_DAY + dt.timedelta(days=21), co_ppm=1, smoking_status="non_smoker"
    )
    assert again["referral"]["reasons"] == ["previously_not_engaged"]
    assert again["referral"]["id"] != referral_id


def test_the_queue_is_oldest_due_first_filtered_and_paginated(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    ids = []
    for number in ("9990000018", "9990000026", "9990000034"):
        ids.append(
            _post_reading(client, epr, nhs_number=number, edd=EDD, co_ppm=6)["referral"]["id"]
        )
    from referral.models import Referral

    oldest = session.get(Referral, ids[2])
    assert oldest is not None
    oldest.first_contact_due_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    session.flush()

    advisor = _advisor(client, session, side)
    page = client.get("/api/v1/referrals", params={"status": "pending"}, headers=advisor).json()
    mine = [i for i in page["items"] if i["id"] in ids]
    assert [i["id"] for i in mine] == [ids[2], ids[0], ids[1]]
    assert page["items"][0]["id"] == ids[2]
    assert [i["overdue"] for i in mine] == [True, False, False]
    assert mine[0]["family_name"] == "Testpatient"

    overdue = client.get("/api/v1/referrals", params={"overdue": "true"}, headers=advisor).json()
    assert [i["id"] for i in overdue["items"]] == [ids[2]]
    everything = client.get("/api/v1/referrals", headers=advisor).json()
    second = client.get(
        "/api/v1/referrals", params={"page": 2, "page_size": 2}, headers=advisor
    ).json()
    assert second["total"] == everything["total"] == len(ids) + 1  # and the world's own one
    assert [i["id"] for i in second["items"]] == [i["id"] for i in everything["items"][2:4]]
    bad = client.get("/api/v1/referrals", params={"status": "lost"}, headers=advisor)
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"].startswith("status")


def test_a_service_acknowledges_and_another_service_sees_nothing(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    referral_id = _post_reading(client, epr, edd=EDD, co_ppm=6)["referral"]["id"]
    service = headers_for(client, session, side, "service")
    accepted = client.post(f"/api/v1/referrals/{referral_id}/accept", headers=service)
    assert accepted.status_code == 200
    assert accepted.json()["accepted_at"] is not None

    other = build_side(session)
    for role in ("service", "advisor"):
        headers = headers_for(client, session, other, role)
        assert client.get(f"/api/v1/referrals/{referral_id}", headers=headers).status_code == 404
        listed = client.get("/api/v1/referrals", headers=headers).json()["items"]
        assert referral_id not in [i["id"] for i in listed]
        if role == "advisor":
            headers["X-CSRF-Token"] = sign_in(client, session, other.users["advisor"])
        event = client.post(
            f"/api/v1/referrals/{referral_id}/events",
            json={"kind": "contact_attempt", "reached": True, "version": 1},
            headers=headers,
        )
        assert event.status_code == 404


def test_epr_to_advisor_end_to_end(client: TestClient, session: Session, side: Side) -> None:
    """An EPR posts 6 ppm; the routed service's advisor sees it first; another service cannot."""
    other = build_side(session)
    advisor = _advisor(client, session, side)
    earlier = client.get("/api/v1/referrals", headers=advisor).json()["total"]
    epr = headers_for(client, session, side, "epr")
    answer = _post_reading(client, epr, edd=EDD, co_ppm=6, nhs_number="9990000042")
    assert answer["referral"]["status"] == "pending"

    advisor = _advisor(client, session, side)
    queue = client.get("/api/v1/referrals", headers=advisor).json()
    assert queue["total"] == earlier + 1
    assert queue["items"][0]["id"] == answer["referral"]["id"]

    stranger = _advisor(client, session, other)
    assert (
        client.get(f"/api/v1/referrals/{answer['referral']['id']}", headers=stranger).status_code
        == 404
    )
