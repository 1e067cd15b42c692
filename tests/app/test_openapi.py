"""The OpenAPI description says what the API answers, and the answers the fuzzing corrected."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.app.access_world import build_side, headers_for, sign_in


def test_every_secured_operation_names_its_credentials_and_error_body(app: FastAPI) -> None:
    schema = app.openapi()
    assert set(schema["components"]["securitySchemes"]) == {"apiKey", "session"}
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    checked = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            assert {"apiKey": []} in operation["security"]
            for status in ("401", "403"):
                body = operation["responses"][status]["content"]["application/json"]["schema"]
                assert body == error_ref
            if "422" in operation["responses"]:
                invalid = operation["responses"]["422"]["content"]["application/json"]
                assert invalid["schema"] == error_ref
            checked += 1
    assert checked >= 10
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_method_not_allowed_names_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("OPTIONS", "/api/v1/measures/staff")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}
    assert response.json()["error"] == "method_not_allowed"


def test_a_date_sent_as_a_number_is_refused_not_read_as_1970(
    client: TestClient, session: Session
) -> None:
    side = build_side(session)
    headers = headers_for(client, session, side, "midwife")
    headers["X-CSRF-Token"] = sign_in(client, session, side.users["midwife"])
    response = client.put(
        "/api/v1/monitors/SIM-0042", headers=headers, json={"last_calibrated_on": 0}
    )
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == "last_calibrated_on"
    fine = client.put(
        "/api/v1/monitors/SIM-0042", headers=headers, json={"last_calibrated_on": "2026-11-01"}
    )
    assert fine.status_code == 200, fine.text
    assert fine.json()["last_calibrated_on"] == "2026-11-01"


def test_an_id_too_large_for_the_database_is_invalid_input(
    client: TestClient, session: Session
) -> None:
    side = build_side(session)
    headers = headers_for(client, session, side, "epr")
    for too_large in (2**31, 2**64):
        response = client.get(f"/api/v1/pregnancies/{too_large}", headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["fields"][0]["field"] == "id"
    assert client.get(f"/api/v1/pregnancies/{2**31 - 1}", headers=headers).status_code == 404
    referral = f"/api/v1/referrals/{side.referral.id}/events"
    service = headers_for(client, session, side, "service")
    huge_version = {**service, "If-Match": f'"{2**40}"'}
    answer = client.post(
        referral, headers=huge_version, json={"kind": "opt_out", "reason": "declined"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["fields"][0]["field"] == "If-Match"


def test_the_docs_list_every_section_in_their_order(app: FastAPI) -> None:
    """The routers are matched readings first; the description keeps its own order of sections,
    and names every section an operation is in."""
    schema = app.openapi()
    declared = [tag["name"] for tag in schema["tags"]]
    used = {
        tag
        for operations in schema["paths"].values()
        for o in operations.values()
        for tag in o.get("tags", [])
    }
    assert declared[:3] == ["health", "pregnancies", "readings"]
    assert used <= set(declared)
