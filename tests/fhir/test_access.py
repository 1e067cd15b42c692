"""Every /fhir route: authenticated, each role where it belongs, failures as OperationOutcome."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.fhir import router
from app.audit.models import AuditEvent
from tests.app.access_world import ALL_ROLES, USER_ROLES, Side, build_side, headers_for, sign_in
from tests.fhir.helpers import FHIR_JSON, issue

PUBLIC = {("GET", "/fhir/metadata")}
CATCH_ALL = "/fhir/{rest:path}"

# Which roles may call each FHIR route; every other role gets 403. New routes must be added here.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("POST", "/fhir/Observation"): {"midwife", "epr", "bridge"},
    ("GET", "/fhir/Observation"): {"midwife", "epr", "bridge"},
    ("GET", "/fhir/Observation/{id}"): {"midwife", "epr", "bridge"},
    ("GET", "/fhir/ServiceRequest"): {"midwife", "advisor", "service"},
    ("GET", "/fhir/ServiceRequest/{id}"): {"midwife", "advisor", "service"},
}


@pytest.fixture
def sides(session: Session) -> tuple[Side, Side]:
    return build_side(session), build_side(session)


def _url(path: str, side: Side) -> str:
    return path.replace("{id}", str(side.referral.id))


def test_the_matrix_covers_every_fhir_route() -> None:
    routes = {
        (method, route.path)
        for route in router.routes
        if isinstance(route, APIRoute) and route.path != CATCH_ALL
        for method in route.methods
    }
    assert routes == set(MATRIX) | PUBLIC


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_without_a_credential_every_route_is_401_security(
    client: TestClient, sides: tuple[Side, Side], method: str, path: str
) -> None:
    response = client.request(
        method, _url(path, sides[0]), content=b"{}" if method == "POST" else None
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert issue(response)["code"] == "security"


def test_a_wrong_key_is_401_and_garbage_from_a_stranger_is_401_first(client: TestClient) -> None:
    wrong = client.get("/fhir/Observation", headers={"Authorization": "Bearer exh_nope"})
    assert wrong.status_code == 401
    assert issue(wrong)["code"] == "security"
    garbage = client.post("/fhir/Observation", content=b"\x00\xff", headers=FHIR_JSON)
    assert garbage.status_code == 401
    assert issue(garbage)["code"] == "security"


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
    headers = {**headers_for(client, session, side, role), **FHIR_JSON}
    if role in USER_ROLES and method != "GET":
        headers["X-CSRF-Token"] = sign_in(client, session, side.users[role])
    response = client.request(
        method,
        _url(path, side),
        headers=headers,
        content=b'{"resourceType": "Observation"}' if method == "POST" else None,
    )
    if role in MATRIX[(method, path)]:
        assert response.status_code not in (401, 403), response.text
        if method == "GET":
            assert response.status_code in (200, 404), response.text
    else:
        assert response.status_code == 403, response.text
        assert issue(response)["code"] == "security"
        assert role in issue(response)["diagnostics"]


def test_metadata_needs_no_credential(client: TestClient) -> None:
    assert client.get("/fhir/metadata").status_code == 200


@pytest.mark.parametrize("role", ["midwife", "advisor", "service"])
def test_another_organisations_referral_is_404_and_audited(
    client: TestClient, session: Session, sides: tuple[Side, Side], role: str
) -> None:
    mine, theirs = sides
    headers = headers_for(client, session, mine, role)
    assert client.get(f"/fhir/ServiceRequest/{mine.referral.id}", headers=headers).is_success
    response = client.get(f"/fhir/ServiceRequest/{theirs.referral.id}", headers=headers)
    assert response.status_code == 404
    assert issue(response)["code"] == "not-found"
    assert "Testpatient" not in response.text
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.record_type == "referral",
            AuditEvent.record_id == str(theirs.referral.id),
            AuditEvent.outcome == "denied",
        )
    ).all()
    assert [row.detail for row in denied] == [{"reason": "not_found"}]


def test_a_denied_role_on_a_record_is_audited(
    client: TestClient, session: Session, sides: tuple[Side, Side]
) -> None:
    side = sides[0]
    response = client.get(
        "/fhir/Observation/12345", headers=headers_for(client, session, side, "advisor")
    )
    assert response.status_code == 403
    rows = session.scalars(
        select(AuditEvent).where(
            AuditEvent.record_type == "reading", AuditEvent.record_id == "12345"
        )
    ).all()
    assert [(r.outcome, r.detail) for r in rows] == [("denied", {"reason": "role"})]
