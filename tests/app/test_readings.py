"""The readings contract: one reading per test, on the right pregnancy and appointment."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.clock import local_today
from app.idempotency import service as idempotency
from app.idempotency.models import IdempotencyRecord
from app.pregnancies.models import Pregnancy
from tests.app.access_world import Side, build_side, headers_for
from tests.app.readings_helpers import NHS, counts, due_for, reading

TODAY = local_today()
BOOKING_DAY = TODAY - dt.timedelta(days=190)  # so that 36 weeks is in the past
EDD = due_for(84, BOOKING_DAY)  # booked at 12 weeks


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


@pytest.fixture
def epr(client: TestClient, session: Session, side: Side) -> dict[str, str]:
    return headers_for(client, session, side, "epr")


def _post(client: TestClient, headers: dict[str, str], body: object, **kw: object) -> object:
    return client.post("/api/v1/readings", json=body, headers=headers, **kw)


def test_a_first_reading_registers_the_pregnancy_at_booking(
    client: TestClient, epr: dict[str, str], session: Session, side: Side
) -> None:
    response = client.post(
        "/api/v1/readings",
        json=reading(on=BOOKING_DAY, co_ppm=2, edd=EDD, smoking_status="non_smoker"),
        headers=epr,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["contact"] == "booking"
    assert body["gestation_days"] == 84
    assert body["co_ppm"] == 2
    assert body["outcome"] == "measured"
    assert body["referral"] is None
    assert [a["code"] for a in body["advice"]] == ["co_normal"]
    assert response.headers["location"] == f"/api/v1/readings/{body['id']}"
    session.expire_all()
    pregnancy = session.get(Pregnancy, body["pregnancy_id"])
    assert pregnancy is not None and pregnancy.unit_id == side.unit.id
    assert pregnancy.estimated_due_date == EDD
    assert pregnancy.postcode == "LS1 4AP"


def test_without_a_current_pregnancy_the_details_are_required(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    before = counts(session)
    response = _post(client, epr, reading(on=BOOKING_DAY, nhs_number="9990000085"))
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "pregnancy"
    assert "estimated_due_date" in response.json()["fields"][0]["message"]
    assert counts(session) == before


def test_later_readings_find_the_pregnancy_and_derive_the_contact(
    client: TestClient, epr: dict[str, str]
) -> None:
    first = _post(client, epr, reading(on=BOOKING_DAY, edd=EDD)).json()
    same_day = _post(client, epr, reading(on=BOOKING_DAY)).json()
    at_20_weeks = _post(client, epr, reading(on=BOOKING_DAY + dt.timedelta(days=56))).json()
    at_36_weeks = _post(client, epr, reading(on=EDD - dt.timedelta(days=28))).json()
    assert {r["pregnancy_id"] for r in (first, same_day, at_20_weeks, at_36_weeks)} == {
        first["pregnancy_id"]
    }
    assert [r["contact"] for r in (first, same_day, at_20_weeks, at_36_weeks)] == [
        "booking",
        "booking",
        "antenatal",
        "36_weeks",
    ]
    assert at_36_weeks["gestation_days"] == 252


def test_a_test_stated_as_36_weeks_far_from_36_weeks_is_refused_and_nothing_is_stored(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    _post(client, epr, reading(on=BOOKING_DAY, edd=EDD))
    at_13_weeks = BOOKING_DAY + dt.timedelta(days=5)  # 12+5
    before = counts(session)
    response = _post(client, epr, reading(on=at_13_weeks, contact="36_weeks"))
    assert response.status_code == 422, response.text
    (field,) = response.json()["fields"]
    assert field["field"] == "contact"
    assert "34+0 to 38+6" in field["message"] and "12+5" in field["message"]
    assert counts(session) == before
    at_34_weeks = EDD - dt.timedelta(days=42)  # 34+0: a week's leeway before the window
    accepted = _post(client, epr, reading(on=at_34_weeks, contact="36_weeks"))
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["contact"] == "36_weeks"


def test_a_second_booking_on_another_day_is_a_conflict(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    _post(client, epr, reading(on=BOOKING_DAY, edd=EDD))
    before = counts(session)
    response = _post(client, epr, reading(on=BOOKING_DAY + dt.timedelta(days=7), contact="booking"))
    assert response.status_code == 409
    assert response.json()["fields"][0]["field"] == "contact"
    assert counts(session) == before


def test_a_changed_due_date_updates_the_pregnancy_and_is_audited(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    first = _post(client, epr, reading(on=BOOKING_DAY, edd=EDD)).json()
    later_edd = EDD + dt.timedelta(days=5)
    again = _post(client, epr, reading(on=BOOKING_DAY + dt.timedelta(days=30), edd=later_edd))
    assert again.json()["pregnancy_id"] == first["pregnancy_id"]
    pregnancy = session.get(Pregnancy, first["pregnancy_id"])
    assert pregnancy is not None
    session.refresh(pregnancy)
    assert pregnancy.estimated_due_date == later_edd
    updates = session.scalars(
        select(AuditEvent).where(
            AuditEvent.subject_pregnancy_id == pregnancy.id, AuditEvent.action == "update"
        )
    ).all()
    assert [u.detail for u in updates] == [{"fields": ["estimated_due_date"]}]


def test_a_due_date_moved_by_a_dating_scan_re_dates_her_tests_and_never_strands_them(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    created = _post(client, epr, reading(on=BOOKING_DAY, edd=EDD)).json()
    url = f"/api/v1/pregnancies/{created['pregnancy_id']}"
    moved = client.patch(
        url, json={"estimated_due_date": str(EDD + dt.timedelta(days=9))}, headers=epr
    )
    assert moved.status_code == 200, moved.text
    assert [c["gestation_days"] for c in moved.json()["contacts"]] == [84 - 9]

    before = client.get(url, headers=epr).json()
    too_late = EDD + dt.timedelta(days=200)  # her booking test would be before it began
    refused = client.patch(url, json={"estimated_due_date": str(too_late)}, headers=epr)
    assert refused.status_code == 422
    (field,) = refused.json()["fields"]
    assert field["field"] == "estimated_due_date"
    assert f"booking test on {BOOKING_DAY.day} {BOOKING_DAY:%B %Y}" in field["message"]
    assert client.get(url, headers=epr).json() == before


def test_after_the_pregnancy_ends_a_new_booking_starts_a_new_one(
    client: TestClient, epr: dict[str, str]
) -> None:
    old_booking = TODAY - dt.timedelta(days=600)
    old_edd = due_for(70, old_booking)
    old = _post(client, epr, reading(on=old_booking, edd=old_edd)).json()
    new_edd = due_for(70, TODAY - dt.timedelta(days=1))
    new = _post(client, epr, reading(on=TODAY - dt.timedelta(days=1), edd=new_edd)).json()
    assert new["pregnancy_id"] != old["pregnancy_id"]
    assert new["contact"] == "booking"


def test_the_birth_then_a_postnatal_test(client: TestClient, epr: dict[str, str]) -> None:
    booking = TODAY - dt.timedelta(days=250)
    edd = due_for(70, booking)  # due 40 days ago
    first = _post(client, epr, reading(on=booking, edd=edd)).json()
    early = _post(client, epr, reading(on=TODAY - dt.timedelta(days=15), contact="postnatal"))
    assert early.status_code == 422
    assert "birth recorded first" in early.json()["fields"][0]["message"]
    assert "/api/" not in early.json()["fields"][0]["message"]
    assert f"/api/v1/pregnancies/{first['pregnancy_id']}/birth" in early.json()["detail"]

    born_on = (TODAY - dt.timedelta(days=30)).isoformat()
    birth = client.post(
        f"/api/v1/pregnancies/{first['pregnancy_id']}/birth",
        json={"born_on": born_on, "smoking_status_at_delivery": "non_smoker"},
        headers=epr,
    )
    assert birth.status_code == 200, birth.text
    assert birth.json()["born_on"] == born_on

    after = _post(client, epr, reading(on=TODAY - dt.timedelta(days=5))).json()
    assert after["contact"] == "postnatal"
    assert after["pregnancy_id"] == first["pregnancy_id"]

    status = client.post(
        f"/api/v1/pregnancies/{first['pregnancy_id']}/postnatal-status",
        json={
            "recorded_on": (TODAY - dt.timedelta(days=2)).isoformat(),
            "smoking_status": "smoker",
        },
        headers=epr,
    )
    assert status.status_code == 200
    assert status.json()["postnatal_statuses"] == [
        {"recorded_on": (TODAY - dt.timedelta(days=2)).isoformat(), "smoking_status": "smoker"}
    ]


def test_a_re_sent_source_id_returns_the_stored_reading(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    body = reading(on=BOOKING_DAY, edd=EDD, source_id="epr-obs-1")
    first = _post(client, epr, body)
    before = counts(session)
    again = _post(client, epr, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert counts(session) == before


def test_a_time_sent_with_an_offset_is_answered_in_utc_the_same_on_every_read(
    client: TestClient, epr: dict[str, str]
) -> None:
    sent = f"{BOOKING_DAY.isoformat()}T10:15:00+05:30"
    body = {**reading(on=BOOKING_DAY, edd=EDD, source_id="epr-obs-offset"), "measured_at": sent}
    first = _post(client, epr, body)
    assert first.status_code == 201, first.text
    assert first.json()["measured_at"] == f"{BOOKING_DAY.isoformat()}T04:45:00Z"
    again = _post(client, epr, body)
    read = client.get(first.headers["location"], headers=epr)
    assert again.json() == first.json()
    assert read.json()["measured_at"] == first.json()["measured_at"]


def test_an_idempotency_key_replays_refuses_reuse_and_guards_a_running_request(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    body = reading(on=BOOKING_DAY, edd=EDD)
    keyed = {**epr, "Idempotency-Key": "4b8d1f7e-key-1"}
    first = _post(client, keyed, body)
    again = _post(client, keyed, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()

    reused = _post(client, keyed, {**body, "co_ppm": 3})
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"

    record = session.scalars(select(IdempotencyRecord)).one()
    digest = idempotency.digest_of("POST", "/api/v1/readings", body)
    session.add(
        IdempotencyRecord(
            caller=record.caller,
            key="still-running",
            request_digest=digest,
            created_at=dt.datetime.now(dt.UTC),
        )
    )
    session.flush()
    running = _post(client, {**epr, "Idempotency-Key": "still-running"}, body)
    assert running.status_code == 409
    assert running.headers["retry-after"] == "1"


def test_a_failed_request_frees_its_idempotency_key(
    client: TestClient, epr: dict[str, str]
) -> None:
    keyed = {**epr, "Idempotency-Key": "fix-and-retry"}
    wrong = _post(client, keyed, reading(on=BOOKING_DAY))  # no pregnancy details yet
    assert wrong.status_code == 422
    fixed = _post(client, keyed, reading(on=BOOKING_DAY, edd=EDD))
    assert fixed.status_code == 201


def _raw(
    client: TestClient,
    headers: dict[str, str],
    content: bytes,
    content_type: str = "application/json",
) -> object:
    return client.post(
        "/api/v1/readings", content=content, headers={**headers, "Content-Type": content_type}
    )


BAD_FIELDS = [
    ({"nhs_number": "0000000000"}, "nhs_number"),
    ({"nhs_number": "1111111111"}, "nhs_number"),
    ({"nhs_number": "943 476 5918"}, "nhs_number"),
    ({"nhs_number": "943476591"}, "nhs_number"),
    ({"nhs_number": "94347659190"}, "nhs_number"),
    ({"nhs_number": "94347659AB"}, "nhs_number"),
    ({"nhs_number": "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19"}, "nhs_number"),
    ({"nhs_number": 9434765919}, "nhs_number"),
    ({"co_ppm": -1}, "co_ppm"),
    ({"co_ppm": 4.5}, "co_ppm"),
    ({"co_ppm": "7"}, "co_ppm"),
    ({"co_ppm": 10**12}, "co_ppm"),
    ({"co_ppm": 501}, "co_ppm"),
    ({"outcome": "declined", "co_ppm": 5}, "co_ppm"),
    ({"outcome": "maybe"}, "outcome"),
    ({"smoking_status": "sometimes"}, "smoking_status"),
    ({"contact": "first"}, "contact"),
    ({"measured_at": "2026-05-01T10:00:00"}, "measured_at"),
    ({"measured_at": "yesterday"}, "measured_at"),
    ({"favourite_colour": "blue"}, "favourite_colour"),
    (
        {"pregnancy": {"estimated_due_date": "2027-01-01", "postcode": "not a postcode"}},
        "pregnancy.postcode",
    ),
]


@pytest.mark.parametrize(("change", "field"), BAD_FIELDS)
def test_bad_fields_are_named_and_nothing_is_stored(
    client: TestClient,
    epr: dict[str, str],
    session: Session,
    change: dict[str, object],
    field: str,
) -> None:
    body = {**reading(on=BOOKING_DAY, edd=EDD), **change}
    before = counts(session)
    response = _post(client, epr, body)
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["fields"]]
    assert counts(session) == before
    assert NHS not in response.text
    assert "Testpatient" not in response.text


PHONE_MESSAGE = "use 5 to 32 digits, spaces and + ( ) - only, for example 07700 900123"


@pytest.mark.parametrize("phone", ["abc", "0770090012x", "0" * 33])
def test_a_bad_phone_number_is_answered_with_what_a_phone_number_is(
    client: TestClient, epr: dict[str, str], session: Session, phone: str
) -> None:
    body = reading(on=BOOKING_DAY, edd=EDD)
    body["pregnancy"]["phone"] = phone
    before = counts(session)

    response = _post(client, epr, body)

    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [{"field": "pregnancy.phone", "message": PHONE_MESSAGE}]
    assert counts(session) == before
    pregnancy_id = _post(client, epr, reading(on=BOOKING_DAY, edd=EDD)).json()["pregnancy_id"]
    patched = client.patch(
        f"/api/v1/pregnancies/{pregnancy_id}", json={"phone": phone}, headers=epr
    )
    assert patched.status_code == 422
    assert patched.json()["fields"] == [{"field": "phone", "message": PHONE_MESSAGE}]


def test_a_missing_ppm_for_a_measured_test_is_named(
    client: TestClient, epr: dict[str, str]
) -> None:
    response = _post(client, epr, reading(on=BOOKING_DAY, edd=EDD, co_ppm=None))
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "co_ppm"


def test_times_in_the_future_or_before_the_pregnancy_are_refused(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    before = counts(session)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    response = _post(client, epr, {**reading(on=TODAY, edd=EDD), "measured_at": future.isoformat()})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "measured_at"
    early = _post(client, epr, reading(on=EDD - dt.timedelta(days=281), edd=EDD))
    assert early.status_code == 422
    assert early.json()["fields"][0]["field"] == "measured_at"
    assert counts(session) == before


@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (b'{"nhs_number": ', "application/json", 400, "malformed_json"),
        (b'{"co_ppm": 1, "co_ppm": 9}', "application/json", 400, "malformed_json"),
        (b'{"co_ppm": NaN}', "application/json", 400, "malformed_json"),
        (b"[" * 10_000 + b"]" * 10_000, "application/json", 400, "malformed_json"),
        (
            b"nhs_number=9434765919",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
        (b'{"nhs_number": "9434765919"}', "text/plain", 415, "unsupported_media_type"),
        (b'{"pad": "' + b"x" * 70_000 + b'"}', "application/json", 413, "payload_too_large"),
    ],
)
def test_unreadable_bodies_are_4xx_and_store_nothing(
    client: TestClient,
    epr: dict[str, str],
    session: Session,
    content: bytes,
    content_type: str,
    status: int,
    error: str,
) -> None:
    before = counts(session)
    response = _raw(client, epr, content, content_type)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert counts(session) == before


def test_a_bad_body_without_a_credential_is_still_401(client: TestClient) -> None:
    response = _raw(client, {}, b"[" * 10_000)
    assert response.status_code == 401


def test_a_reading_is_read_back_by_its_sender_and_its_unit_only(
    client: TestClient, session: Session, side: Side
) -> None:
    epr = headers_for(client, session, side, "epr")
    created = _post(client, epr, reading(on=BOOKING_DAY, edd=EDD)).json()
    url = f"/api/v1/readings/{created['id']}"
    assert client.get(url, headers=epr).json() == created
    midwife = headers_for(client, session, side, "midwife")
    assert client.get(url, headers=midwife).status_code == 200
    other = build_side(session)
    other_midwife = headers_for(client, session, other, "midwife")
    assert client.get(url, headers=other_midwife).status_code == 404
    bridge = headers_for(client, session, side, "bridge")
    assert client.get(url, headers=bridge).status_code == 404  # it did not post this one


def test_the_pregnancy_shows_its_contacts_readings_and_can_be_corrected(
    client: TestClient, epr: dict[str, str]
) -> None:
    created = _post(
        client, epr, reading(on=BOOKING_DAY, edd=EDD, co_ppm=6, smoking_status="smoker")
    ).json()
    url = f"/api/v1/pregnancies/{created['pregnancy_id']}"
    detail = client.get(url, headers=epr).json()
    assert [c["kind"] for c in detail["contacts"]] == ["booking"]
    assert [r["id"] for r in detail["readings"]] == [created["id"]]
    assert [r["status"] for r in detail["referrals"]] == ["pending"]

    patched = client.patch(url, json={"phone": "07700 900999"}, headers=epr)
    assert patched.status_code == 200
    assert patched.json()["phone"] == "07700 900999"
    bad = client.patch(url, json={"postcode": "???"}, headers=epr)
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "postcode"
    unknown = client.patch(url, json={"nhs_number": "9434765919"}, headers=epr)
    assert unknown.status_code == 422
