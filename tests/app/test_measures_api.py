"""The measures API: JSON and CSV, bad parameters, SPC charts, the training register, feedback."""

from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.identity.models import User
from app.orgs.models import Organisation
from tests import factories
from tests.app.access_world import sign_in
from tests.measures.world import World


@dataclass
class Place:
    world: World
    lead: User
    admin: User
    advisor: User
    other_unit: Organisation


@pytest.fixture
def place(session: Session) -> Place:
    world = World(session)
    other = World(session)
    return Place(
        world=world,
        lead=factories.make_user(session, role="lead", organisation=world.unit),
        admin=factories.make_user(session, role="admin", organisation=world.unit),
        advisor=factories.make_user(session, role="advisor", organisation=world.service),
        other_unit=other.unit,
    )


def as_user(client: TestClient, session: Session, user: User) -> dict[str, str]:
    client.cookies.clear()
    return {"X-CSRF-Token": sign_in(client, session, user)}


def march_bookings(world: World, smokers: int, others: int) -> None:
    for _ in range(smokers):
        world.reading(world.woman(), "2026-03-10", kind="booking", co_ppm=9, status="smoker")
    for _ in range(others):
        world.reading(world.woman(), "2026-03-11", kind="booking", co_ppm=1, status="non_smoker")


def fields(response: object) -> list[str]:
    return [f["field"] for f in response.json()["fields"]]  # type: ignore[attr-defined]


# --- the measures ------------------------------------------------------------------------------


def test_a_lead_gets_her_units_measures_month_by_month(
    client: TestClient, session: Session, place: Place
) -> None:
    march_bookings(place.world, smokers=3, others=9)
    headers = as_user(client, session, place.lead)
    response = client.get(
        "/api/v1/measures", params={"from": "2026-02", "to": "2026-03"}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"], body["suppress_below"]) == ("2026-02", "2026-03", 0)
    assert body["units"] == [{"code": place.world.unit.code, "name": place.world.unit.name}]
    by_key = {(v["month"], v["measure"]): v for v in body["values"]}
    assert len(body["values"]) == 2 * 17
    march = by_key[("2026-03", "smoking_at_booking")]
    assert (march["numerator"], march["denominator"], march["unknown"]) == (3, 12, 0)
    assert march["proportion"] == pytest.approx(0.25)
    february = by_key[("2026-02", "smoking_at_booking")]
    assert (february["proportion"], february["note"], february["denominator"]) == (
        None,
        "no data",
        0,
    )


def test_the_csv_export_suppresses_small_numbers_by_default(
    client: TestClient, session: Session, place: Place
) -> None:
    march_bookings(place.world, smokers=3, others=9)
    headers = as_user(client, session, place.lead)
    params = {"from": "2026-03", "to": "2026-03", "format": "csv"}
    response = client.get("/api/v1/measures", params=params, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == [
        "unit_code",
        "unit_name",
        "month",
        "measure",
        "numerator",
        "denominator",
        "proportion",
        "unknown",
        "note",
    ]
    booking = next(r for r in rows if r["measure"] == "smoking_at_booking")
    assert (booking["numerator"], booking["denominator"], booking["proportion"]) == ("*", "12", "*")
    assert booking["note"] == "suppressed"

    plain = client.get(
        "/api/v1/measures", params={**params, "suppress_below": "0"}, headers=headers
    )
    booking = next(
        r for r in csv.DictReader(io.StringIO(plain.text)) if r["measure"] == "smoking_at_booking"
    )
    assert (booking["numerator"], booking["proportion"]) == ("3", "0.2500")


def test_an_administrator_exports_every_unit(
    client: TestClient, session: Session, place: Place
) -> None:
    march_bookings(place.world, smokers=1, others=1)
    headers = as_user(client, session, place.admin)
    response = client.get(
        "/api/v1/measures", params={"from": "2026-03", "to": "2026-03"}, headers=headers
    )
    codes = {u["code"] for u in response.json()["units"]}
    assert {place.world.unit.code, place.other_unit.code} <= codes
    other = client.get(
        "/api/v1/measures",
        params={"from": "2026-03", "to": "2026-03", "unit": place.other_unit.code.lower()},
        headers=headers,
    )
    assert {u["code"] for u in other.json()["units"]} == {place.other_unit.code}


def test_a_lead_may_not_see_another_units_measures(
    client: TestClient, session: Session, place: Place
) -> None:
    headers = as_user(client, session, place.lead)
    response = client.get(
        "/api/v1/measures", params={"unit": place.other_unit.code}, headers=headers
    )
    assert response.status_code == 403
    assert fields(response) == ["unit"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-05", "to": "2026-04"}, "to"),
        ({"from": "2020-01", "to": "2026-04"}, "from"),
        ({"from": "2026-4"}, "from"),
        ({"to": "April"}, "to"),
        ({"unit": "NOSUCH"}, "unit"),
        ({"format": "csv", "suppress_below": "seven"}, "suppress_below"),
        ({"format": "xlsx"}, "format"),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(
    client: TestClient, session: Session, place: Place, params: dict[str, str], field: str
) -> None:
    headers = as_user(client, session, place.admin)
    response = client.get("/api/v1/measures", params=params, headers=headers)
    assert response.status_code == 422, response.text
    assert fields(response) == [field]
    assert response.json()["error"] == "invalid_input"


def test_a_booking_just_after_midnight_in_summer_is_that_days_month(
    client: TestClient, session: Session, place: Place
) -> None:
    """Through the readings API: 23:30 UTC on 31 March 2026 is 00:30 on 1 April in England."""
    _epr, key = factories.make_api_client(session, role="epr", organisation=place.world.unit)
    reading = {
        "nhs_number": "9990000069",
        "measured_at": "2026-03-31T23:30:00+00:00",
        "co_ppm": 1,
        "smoking_status": "non_smoker",
        "pregnancy": {"estimated_due_date": "2026-10-20"},
    }
    posted = client.post(
        "/api/v1/readings", json=reading, headers={"Authorization": f"Bearer {key}"}
    )
    assert posted.status_code == 201, posted.text
    headers = as_user(client, session, place.lead)
    body = client.get(
        "/api/v1/measures", params={"from": "2026-03", "to": "2026-04"}, headers=headers
    ).json()
    tested = {
        v["month"]: v["denominator"] for v in body["values"] if v["measure"] == "co_test_at_booking"
    }
    assert tested == {"2026-03": 0, "2026-04": 1}


# --- SPC ---------------------------------------------------------------------------------------


def test_an_spc_chart_as_json_and_as_svg(
    client: TestClient, session: Session, place: Place
) -> None:
    for month, smokers in (("01", 2), ("02", 3), ("03", 2), ("04", 9)):
        for _ in range(smokers):
            place.world.reading(
                place.world.woman(), f"2026-{month}-10", kind="booking", co_ppm=8, status="smoker"
            )
        for _ in range(10 - smokers):
            place.world.reading(
                place.world.woman(),
                f"2026-{month}-11",
                kind="booking",
                co_ppm=0,
                status="non_smoker",
            )
    headers = as_user(client, session, place.lead)
    params = {
        "from": "2026-01",
        "to": "2026-05",
        "baseline_from": "2026-01",
        "baseline_to": "2026-03",
    }
    body = client.get(
        "/api/v1/measures/spc/smoking_at_booking", params=params, headers=headers
    ).json()
    assert (body["chart"], body["improvement"], body["baseline_to"]) == ("p", "down", "2026-03")
    assert body["centre"] == pytest.approx(7 / 30)
    april, may = body["points"][3], body["points"][4]
    assert april["value"] == pytest.approx(0.9)
    assert {"rule": "outside_limits", "side": "high"} in april["signals"]
    assert april["variation"] == "special_cause_concern"
    assert (may["value"], may["variation"]) == (None, None)
    assert body["variation"] == "special_cause_concern"

    xmr = client.get(
        "/api/v1/measures/spc/smoking_at_booking",
        params={**params, "chart": "xmr"},
        headers=headers,
    ).json()
    assert xmr["chart"] == "xmr" and xmr["mean_moving_range"] == pytest.approx(0.1)

    svg = client.get(
        "/api/v1/measures/charts/smoking_at_booking.svg", params=params, headers=headers
    )
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert ".svg" in svg.headers["content-disposition"]
    assert ET.fromstring(svg.text).tag.endswith("svg")


def test_an_unknown_measure_is_404_and_a_bad_baseline_is_422(
    client: TestClient, session: Session, place: Place
) -> None:
    headers = as_user(client, session, place.lead)
    assert client.get("/api/v1/measures/spc/smoking", headers=headers).status_code == 404
    response = client.get(
        "/api/v1/measures/spc/smoking_at_booking",
        params={
            "from": "2026-01",
            "to": "2026-06",
            "baseline_from": "2025-01",
            "baseline_to": "2025-06",
        },
        headers=headers,
    )
    assert response.status_code == 422
    assert fields(response) == ["baseline_from"]


def test_the_definitions_list_every_measure_with_its_direction(
    client: TestClient, session: Session, place: Place
) -> None:
    headers = as_user(client, session, place.lead)
    body = client.get("/api/v1/measures/definitions", headers=headers).json()
    assert len(body) == 17
    assert {d["code"]: d["improvement"] for d in body}["smoking_at_delivery"] == "down"


# --- the training register ----------------------------------------------------------------------


def test_a_lead_keeps_the_training_register_and_the_staff_measures_follow(
    client: TestClient, session: Session, place: Place
) -> None:
    headers = as_user(client, session, place.lead)
    new = {"staff_number": "ESR-1001", "name": "Alex Midwife", "role": "midwife"}
    created = client.post("/api/v1/measures/staff", json=new, headers=headers)
    assert created.status_code == 201, created.text
    staff_id = created.json()["id"]
    assert client.post("/api/v1/measures/staff", json=new, headers=headers).status_code == 409
    client.post("/api/v1/measures/staff", json={**new, "staff_number": "ESR-1002"}, headers=headers)
    trained = client.post(
        f"/api/v1/measures/staff/{staff_id}/training",
        json={
            "training": "co_monitoring",
            "completed_on": "2026-01-15",
            "expires_on": "2027-01-15",
        },
        headers=headers,
    )
    assert trained.status_code == 201, trained.text
    assert [t["training"] for t in trained.json()["trainings"]] == ["co_monitoring"]
    bad = client.post(
        f"/api/v1/measures/staff/{staff_id}/training",
        json={
            "training": "co_monitoring",
            "completed_on": "2026-01-15",
            "expires_on": "2026-01-01",
        },
        headers=headers,
    )
    assert bad.status_code == 422 and fields(bad) == ["expires_on"]
    typo = client.post(
        f"/api/v1/measures/staff/{staff_id}/training",
        json={"training": "co_monitoring", "completed_on": "1926-01-15"},
        headers=headers,
    )
    assert typo.status_code == 422 and fields(typo) == ["completed_on"]
    assert "check the year" in typo.text

    body = client.get(
        "/api/v1/measures", params={"from": "2026-02", "to": "2026-02"}, headers=headers
    ).json()
    co = next(v for v in body["values"] if v["measure"] == "staff_trained_co_monitoring")
    assert (co["numerator"], co["denominator"]) == (1, 2)

    left = client.patch(
        f"/api/v1/measures/staff/{staff_id}", json={"left_on": "2026-02-01"}, headers=headers
    )
    assert left.json()["left_on"] == "2026-02-01"
    body = client.get(
        "/api/v1/measures", params={"from": "2026-02", "to": "2026-02"}, headers=headers
    ).json()
    co = next(v for v in body["values"] if v["measure"] == "staff_trained_co_monitoring")
    assert (co["numerator"], co["denominator"]) == (0, 1)
    listed = client.get("/api/v1/measures/staff", headers=headers).json()
    assert [m["staff_number"] for m in listed] == ["ESR-1001", "ESR-1002"]


def test_another_units_staff_member_is_404_to_a_lead(
    client: TestClient, session: Session, place: Place
) -> None:
    member = place.world.staff(unit=place.other_unit)
    headers = as_user(client, session, place.lead)
    response = client.patch(
        f"/api/v1/measures/staff/{member.id}", json={"name": "X"}, headers=headers
    )
    assert response.status_code == 404


# --- feedback ----------------------------------------------------------------------------------


def test_the_service_records_feedback_and_the_lead_reads_it_without_the_referral(
    client: TestClient, session: Session, place: Place
) -> None:
    pregnancy = place.world.woman()
    referral = place.world.referral(pregnancy, dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC))
    advisor = as_user(client, session, place.advisor)
    given = {
        "referral_id": referral.id,
        "rating": 5,
        "comment": "Kind and quick.",
        "received_on": "2026-03-20",
    }
    created = client.post("/api/v1/measures/feedback", json=given, headers=advisor)
    assert created.status_code == 201, created.text
    assert created.json()["unit"] == place.world.unit.code
    audit = session.scalars(
        select(AuditEvent).where(AuditEvent.record_type == "service_feedback")
    ).one()
    assert audit.subject_pregnancy_id == pregnancy.id
    by_unit = {"unit": place.world.unit.code, "rating": 2, "received_on": "2026-03-21"}
    assert (
        client.post("/api/v1/measures/feedback", json=by_unit, headers=advisor).status_code == 201
    )

    lead = as_user(client, session, place.lead)
    listed = client.get(
        "/api/v1/measures/feedback", params={"from": "2026-03", "to": "2026-03"}, headers=lead
    )
    assert [f["rating"] for f in listed.json()] == [2, 5]
    assert "referral_id" not in listed.text
    body = client.get(
        "/api/v1/measures", params={"from": "2026-03", "to": "2026-03"}, headers=lead
    ).json()
    good = next(v for v in body["values"] if v["measure"] == "feedback_positive")
    assert (good["numerator"], good["denominator"]) == (1, 2)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"rating": 4, "received_on": "2026-03-01"}, 422, "referral_id"),
        ({"rating": 6, "unit": "X", "received_on": "2026-03-01"}, 422, "rating"),
        ({"rating": 4, "received_on": "2099-03-01", "unit": "X"}, 422, "received_on"),
        ({"rating": 4, "received_on": "0291-05-09", "unit": "X"}, 422, "received_on"),
    ],
)
def test_feedback_that_cannot_be_stored_is_refused(
    client: TestClient,
    session: Session,
    place: Place,
    body: dict[str, object],
    status: int,
    field: str,
) -> None:
    headers = as_user(client, session, place.advisor)
    response = client.post("/api/v1/measures/feedback", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert fields(response) == [field]


def test_feedback_for_a_unit_or_referral_the_service_does_not_serve_is_refused(
    client: TestClient, session: Session, place: Place
) -> None:
    headers = as_user(client, session, place.advisor)
    not_ours = {"unit": place.other_unit.code, "rating": 4, "received_on": "2026-03-01"}
    response = client.post("/api/v1/measures/feedback", json=not_ours, headers=headers)
    assert response.status_code == 422 and fields(response) == ["unit"]
    other = World(session, unit=place.other_unit)
    referral = other.referral(other.woman(), dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    theirs = {"referral_id": referral.id, "rating": 4, "received_on": "2026-03-01"}
    assert client.post("/api/v1/measures/feedback", json=theirs, headers=headers).status_code == 404
