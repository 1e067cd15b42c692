"""Monitor results arrive from bridges once each, and midwives attach them to appointments."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.clock import local_date
from app.monitors.models import DeviceReading
from tests.app.access_world import Side, build_side, headers_for, sign_in
from tests.app.readings_helpers import due_for

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
MEASURED = NOW - dt.timedelta(minutes=3)
MEASURED_ON = local_date(MEASURED)  # the clinical date of a result, which may be NOW's yesterday


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


def result(sequence: int, co_ppm: int = 7, **extra: Any) -> dict[str, Any]:
    body = {
        "device_serial": "PB-100200",
        "sequence": sequence,
        "co_ppm": co_ppm,
        "measured_at": MEASURED.isoformat(),
        "battery_percent": 80,
        "calibration_due_on": (NOW.date() + dt.timedelta(days=90)).isoformat(),
        "model": "piCObaby",
        "firmware": "2.1",
    }
    body.update(extra)
    return body


def test_a_result_is_stored_once_and_listed_until_recorded(
    client: TestClient, session: Session, side: Side
) -> None:
    bridge = headers_for(client, session, side, "bridge")
    first = client.post("/api/v1/device-readings", json=result(1), headers=bridge)
    again = client.post("/api/v1/device-readings", json=result(1), headers=bridge)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    clash = client.post("/api/v1/device-readings", json=result(1, co_ppm=9), headers=bridge)
    assert clash.status_code == 409
    assert clash.json()["fields"][0]["field"] == "sequence"

    midwife = {"X-CSRF-Token": sign_in(client, session, side.users["midwife"])}
    waiting = client.get(
        "/api/v1/device-readings",
        params={"device": "PB-100200", "unassigned": "true"},
        headers=midwife,
    ).json()
    assert [w["id"] for w in waiting] == [first.json()["id"]]

    today = MEASURED_ON
    recorded = client.post(
        "/api/v1/readings",
        json={
            "nhs_number": "9990000085",
            "device_reading_id": first.json()["id"],
            "smoking_status": "smoker",
            "pregnancy": {"estimated_due_date": due_for(100, today).isoformat()},
        },
        headers=midwife,
    )
    assert recorded.status_code == 201, recorded.text
    reading = recorded.json()
    assert (reading["co_ppm"], reading["device_serial"]) == (7, "PB-100200")
    assert reading["measured_at"].startswith(MEASURED.date().isoformat())
    assert reading["referral"]["reasons"] == ["co_elevated", "self_reported_smoker"]
    assert reading["calibration_warning"] is None
    assert (
        client.get("/api/v1/device-readings", params={"unassigned": "true"}, headers=midwife).json()
        == []
    )

    twice = client.post(
        "/api/v1/readings",
        json={"nhs_number": "9990000085", "device_reading_id": first.json()["id"]},
        headers=midwife,
    )
    assert twice.status_code == 409
    assert twice.json()["fields"][0]["field"] == "device_reading_id"


def test_another_units_result_cannot_be_attached(
    client: TestClient, session: Session, side: Side
) -> None:
    bridge = headers_for(client, session, side, "bridge")
    posted = client.post("/api/v1/device-readings", json=result(5), headers=bridge).json()
    other = build_side(session)
    midwife = {"X-CSRF-Token": sign_in(client, session, other.users["midwife"])}
    response = client.post(
        "/api/v1/readings",
        json={"nhs_number": "9990000085", "device_reading_id": posted["id"]},
        headers=midwife,
    )
    assert response.status_code == 404
    assert client.get("/api/v1/device-readings", headers=midwife).json() == []


def test_results_left_unrecorded_for_two_hours_are_listed(
    client: TestClient, session: Session, side: Side
) -> None:
    bridge = headers_for(client, session, side, "bridge")
    old = client.post(
        "/api/v1/device-readings",
        json=result(7, measured_at=(NOW - dt.timedelta(hours=3)).isoformat()),
        headers=bridge,
    ).json()
    client.post("/api/v1/device-readings", json=result(8), headers=bridge)
    midwife = headers_for(client, session, side, "midwife")
    unrecorded = client.get(
        "/api/v1/device-readings", params={"unrecorded": "true"}, headers=midwife
    ).json()
    assert [u["id"] for u in unrecorded] == [old["id"]]


def test_a_monitor_past_calibration_warns(client: TestClient, session: Session, side: Side) -> None:
    bridge = headers_for(client, session, side, "bridge")
    overdue = (MEASURED_ON - dt.timedelta(days=1)).isoformat()
    posted = client.post(
        "/api/v1/device-readings", json=result(9, calibration_due_on=overdue), headers=bridge
    ).json()
    assert "due for calibration" in posted["calibration_warning"]
    midwife = {"X-CSRF-Token": sign_in(client, session, side.users["midwife"])}
    monitors = client.get("/api/v1/monitors", headers=midwife).json()
    assert [(m["serial"], m["calibration_overdue"]) for m in monitors] == [("PB-100200", True)]
    reading = client.post(
        "/api/v1/readings",
        json={
            "nhs_number": "9990000085",
            "device_reading_id": posted["id"],
            "pregnancy": {"estimated_due_date": due_for(100, MEASURED_ON).isoformat()},
        },
        headers=midwife,
    ).json()
    assert "due for calibration" in reading["calibration_warning"]

    calibrated = client.put(
        "/api/v1/monitors/PB-100200",
        json={
            "last_calibrated_on": NOW.date().isoformat(),
            "calibration_due_on": (NOW.date() + dt.timedelta(days=180)).isoformat(),
        },
        headers=midwife,
    )
    assert calibrated.status_code == 200
    assert calibrated.json()["calibration_overdue"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"co_ppm": -1}, "co_ppm"),
        ({"co_ppm": 501}, "co_ppm"),
        ({"co_ppm": 7.5}, "co_ppm"),
        ({"sequence": 0}, "sequence"),
        ({"device_serial": "bad serial!"}, "device_serial"),
        ({"measured_at": "2026-11-26T10:00:00"}, "measured_at"),
        ({"battery_percent": 120}, "battery_percent"),
    ],
)
def test_impossible_results_are_refused(
    client: TestClient, session: Session, side: Side, change: dict[str, Any], field: str
) -> None:
    bridge = headers_for(client, session, side, "bridge")
    response = client.post("/api/v1/device-readings", json={**result(11), **change}, headers=bridge)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.json()["fields"]]
    assert session.query(DeviceReading).count() == 0
