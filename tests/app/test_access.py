"""Every route authenticated, each role only where it belongs, no organisation seeing another's."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.main import PAGE_ROUTERS
from tests.app.access_world import (
    ALL_ROLES,
    SHARED_NHS_NUMBER,
    USER_ROLES,
    Side,
    build_side,
    headers_for,
    sign_in,
)

PUBLIC = {"/healthz", "/readyz", "/login", "/oauth2/token"}  # the token endpoint checks assertions


@pytest.fixture
def sides(session: Session) -> tuple[Side, Side]:
    return build_side(session), build_side(session)


def _concrete(path: str, side: Side) -> str:
    return path.replace("{id}", str(side.pregnancy.id)).replace("{serial}", "PB-1")


def _query_for(operation: dict[str, Any]) -> dict[str, str]:
    query = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and parameter.get("required"):
            query[parameter["name"]] = SHARED_NHS_NUMBER if "nhs" in parameter["name"] else "1"
    return query


def test_every_api_route_answers_401_without_a_credential(
    app: FastAPI, client: TestClient, sides: tuple[Side, Side]
) -> None:
    schema = app.openapi()
    checked = 0
    for path, operations in schema["paths"].items():
        if path in PUBLIC:
            continue
        for method, operation in operations.items():
            response = client.request(
                method.upper(), _concrete(path, sides[0]), params=_query_for(operation)
            )
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"] == "not_authenticated"
            checked += 1
    assert checked >= 4


def test_every_page_answers_401_with_the_login_form_without_a_session(
    client: TestClient, sides: tuple[Side, Side]
) -> None:
    checked = 0
    for router in PAGE_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            if route.path in PUBLIC:
                continue
            for method in route.methods:
                response = client.request(method, _concrete(route.path, sides[0]))
                assert response.status_code == 401, (method, route.path)
                assert 'action="/login"' in response.text
                assert "Testpatient" not in response.text
                checked += 1
    assert checked >= 3


# Which roles may call each API route; every other role gets 403. New routes must be added here.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/pregnancies"): {"midwife", "epr"},
    ("GET", "/api/v1/pregnancies/{id}"): {"midwife", "epr"},
    ("PATCH", "/api/v1/pregnancies/{id}"): {"midwife", "epr"},
    ("POST", "/api/v1/pregnancies/{id}/birth"): {"midwife", "epr"},
    ("POST", "/api/v1/pregnancies/{id}/postnatal-status"): {"midwife", "epr"},
    ("POST", "/api/v1/readings"): {"midwife", "epr", "bridge"},
    ("GET", "/api/v1/readings/{id}"): {"midwife", "epr", "bridge"},
    ("POST", "/api/v1/device-readings"): {"bridge"},
    ("GET", "/api/v1/device-readings"): {"midwife"},
    ("GET", "/api/v1/monitors"): {"midwife", "lead"},
    ("PUT", "/api/v1/monitors/{serial}"): {"midwife", "lead"},
    ("GET", "/api/v1/referrals"): {"midwife", "advisor", "service"},
    ("GET", "/api/v1/referrals/{id}"): {"midwife", "advisor", "service"},
    ("POST", "/api/v1/referrals/{id}/events"): {"midwife", "advisor", "service"},
    ("POST", "/api/v1/referrals/{id}/accept"): {"service"},
    ("GET", "/api/v1/admin/audit"): {"admin"},
    ("GET", "/api/v1/admin/deliveries"): {"admin"},
    ("POST", "/api/v1/admin/deliveries/{id}/redeliver"): {"admin"},
    ("POST", "/api/v1/admin/services/{code}/deliveries/redeliver"): {"admin"},
    ("GET", "/api/v1/admin/services/{code}/delivery"): {"admin"},
    ("POST", "/api/v1/admin/services/{code}/delivery/secret"): {"admin"},
    ("GET", "/api/v1/measures"): {"lead", "admin"},
    ("GET", "/api/v1/measures/definitions"): {"lead", "admin"},
    ("GET", "/api/v1/measures/spc/{measure}"): {"lead", "admin"},
    ("GET", "/api/v1/measures/charts/{measure}.svg"): {"lead", "admin"},
    ("GET", "/api/v1/measures/staff"): {"lead", "admin"},
    ("POST", "/api/v1/measures/staff"): {"lead", "admin"},
    ("PATCH", "/api/v1/measures/staff/{id}"): {"lead", "admin"},
    ("POST", "/api/v1/measures/staff/{id}/training"): {"lead", "admin"},
    ("POST", "/api/v1/measures/feedback"): {"advisor", "service"},
    ("GET", "/api/v1/measures/feedback"): {"lead", "admin"},
}


def _url(path: str, side: Side) -> str:
    path = path.replace("{serial}", "PB-1")
    path = path.replace("{code}", side.service.code)
    if path.startswith("/api/v1/readings/"):
        return path.replace("{id}", "1")
    if path.startswith("/api/v1/referrals/"):
        return path.replace("{id}", str(side.referral.id))
    return path.replace("{id}", str(side.pregnancy.id))


def test_the_matrix_covers_every_api_route(app: FastAPI) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    assert routes == set(MATRIX)


@pytest.mark.parametrize("role", ALL_ROLES)
@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_role_by_route(
    client: TestClient,
    session: Session,
    sides: tuple[Side, Side],
    role: str,
    method: str,
    path: str,
) -> None:
    side = sides[0]
    headers = headers_for(client, session, side, role)
    if role in USER_ROLES and method != "GET":
        headers["X-CSRF-Token"] = sign_in(client, session, side.users[role])
    response = client.request(
        method,
        _url(path, side),
        headers=headers,
        params={"nhs_number": SHARED_NHS_NUMBER},
        json={} if method != "GET" else None,
    )
    if role in MATRIX[(method, path)]:
        # Past the role check; the empty body or the test data decide the rest.
        assert response.status_code not in (401, 403), response.text
        if method == "GET":
            assert response.status_code in (200, 404), response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "forbidden"
        assert role in response.json()["detail"]


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("midwife", "/api/v1/pregnancies/{id}"),
        ("epr", "/api/v1/pregnancies/{id}"),
        ("midwife", "/api/v1/referrals/{id}"),
        ("advisor", "/api/v1/referrals/{id}"),
        ("service", "/api/v1/referrals/{id}"),
    ],
)
def test_another_organisations_record_is_404(
    client: TestClient, session: Session, sides: tuple[Side, Side], role: str, path: str
) -> None:
    mine, theirs = sides
    headers = headers_for(client, session, mine, role)
    assert client.get(_url(path, mine), headers=headers).status_code == 200
    response = client.get(_url(path, theirs), headers=headers)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "Testpatient" not in response.text


def test_search_finds_only_the_callers_unit(
    client: TestClient, session: Session, sides: tuple[Side, Side]
) -> None:
    mine, theirs = sides
    headers = headers_for(client, session, mine, "midwife")
    found = client.get(
        "/api/v1/pregnancies", params={"nhs_number": "943 476 5919"}, headers=headers
    ).json()
    assert [p["id"] for p in found] == [mine.pregnancy.id]
    assert theirs.pregnancy.id not in [p["id"] for p in found]


def _audit_rows(session: Session, **where: Any) -> list[AuditEvent]:
    statement = select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)
    return list(session.scalars(statement))


def test_reading_a_pregnancy_leaves_exactly_one_audit_row_naming_the_reader(
    client: TestClient, session: Session, sides: tuple[Side, Side]
) -> None:
    side = sides[0]
    midwife = side.users["midwife"]
    headers = headers_for(client, session, side, "midwife")
    before = session.scalar(select(func.count()).select_from(AuditEvent))

    response = client.get(f"/api/v1/pregnancies/{side.pregnancy.id}", headers=headers)
    assert response.status_code == 200
    assert response.json()["nhs_number"] == SHARED_NHS_NUMBER

    after = session.scalar(select(func.count()).select_from(AuditEvent))
    assert after == before + 1
    (row,) = _audit_rows(session, subject_pregnancy_id=side.pregnancy.id)
    assert (row.actor_name, row.role, row.action, row.outcome) == (
        midwife.username,
        "midwife",
        "read",
        "allowed",
    )
    assert row.record_type == "pregnancy"
    assert row.record_id == str(side.pregnancy.id)
    assert row.request_id == response.headers["x-request-id"]
    assert SHARED_NHS_NUMBER not in str(row.detail)


def test_denied_attempts_on_a_record_are_audited(
    client: TestClient, session: Session, sides: tuple[Side, Side]
) -> None:
    mine, theirs = sides
    target = f"/api/v1/pregnancies/{theirs.pregnancy.id}"
    client.get(target)  # no credential: 401
    client.get(target, headers=headers_for(client, session, mine, "advisor"))  # role: 403
    client.get(target, headers=headers_for(client, session, mine, "midwife"))  # other unit: 404

    rows = _audit_rows(session, record_type="pregnancy", record_id=str(theirs.pregnancy.id))
    assert [(r.actor_type, r.outcome, r.detail) for r in rows] == [
        ("anonymous", "denied", {"reason": "not_authenticated"}),
        ("user", "denied", {"reason": "role"}),
        ("user", "denied", {"reason": "not_found"}),
    ]
    assert rows[2].actor_name == mine.users["midwife"].username


def test_admin_sees_who_looked_at_a_womans_record_in_time_order(
    client: TestClient, session: Session, sides: tuple[Side, Side]
) -> None:
    mine, theirs = sides
    client.get(
        f"/api/v1/pregnancies/{mine.pregnancy.id}",
        headers=headers_for(client, session, mine, "midwife"),
    )
    client.get(
        f"/api/v1/referrals/{theirs.referral.id}",
        headers=headers_for(client, session, theirs, "service"),
    )
    admin = headers_for(client, session, mine, "admin")
    first = client.get(
        "/api/v1/admin/audit", params={"nhs_number": SHARED_NHS_NUMBER}, headers=admin
    )
    assert first.status_code == 200
    body = first.json()
    assert set(body["pregnancy_ids"]) == {mine.pregnancy.id, theirs.pregnancy.id}
    assert [(e["actor_name"], e["action"], e["record_type"]) for e in body["events"]] == [
        (mine.users["midwife"].username, "read", "pregnancy"),
        (theirs.client_names["service"], "read", "referral"),
    ]
    times = [e["occurred_at"] for e in body["events"]]
    assert times == sorted(times)

    second = client.get(
        "/api/v1/admin/audit", params={"nhs_number": SHARED_NHS_NUMBER}, headers=admin
    )
    actions = [e["action"] for e in second.json()["events"]]
    assert actions.count("audit_query") == 2  # the first query, once per pregnancy


def test_the_admin_audit_query_checks_the_nhs_number(
    client: TestClient, session: Session, sides: tuple[Side, Side]
) -> None:
    admin = headers_for(client, session, sides[0], "admin")
    response = client.get(
        "/api/v1/admin/audit", params={"nhs_number": "943 476 5918"}, headers=admin
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "nhs_number"
    assert "5918" not in response.text
