"""Referrals as FHIR ServiceRequests: a service reads the ones routed to it."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.servicerequest import ServiceRequest
from sqlalchemy.orm import Session

from app.readings.models import Reading
from tests.app.access_world import Side, build_side, headers_for
from tests.app.readings_helpers import due_for
from tests.fhir.helpers import FHIR_JSON, co_observation

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


@pytest.fixture
def sides(session: Session) -> tuple[Side, Side]:
    return build_side(session), build_side(session)


def _entries(client: TestClient, headers: dict[str, str], **params: str) -> list[str]:
    response = client.get("/fhir/ServiceRequest", params=params, headers=headers)
    assert response.status_code == 200, response.text
    bundle = Bundle.model_validate(response.json())
    assert bundle.type == "searchset"
    return [str(e.resource.id) for e in bundle.entry or []]  # type: ignore[union-attr]


def test_a_service_sees_its_own_active_referrals_only(
    client: TestClient, session: Session, sides: tuple[Side, Side]
) -> None:
    mine, theirs = sides
    closed = mine.referral
    closed.status, closed.closed_at = "opted_out", NOW
    session.flush()
    epr = {**headers_for(client, session, mine, "epr"), **FHIR_JSON}
    posted = client.post(
        "/fhir/Observation",
        json=co_observation(nhs_number="9990000069", when=NOW, ppm=5, edd=due_for(120, NOW.date())),
        headers=epr,
    )
    assert posted.status_code == 201, posted.text
    session.expire_all()
    reading = session.get(Reading, int(posted.json()["id"]))
    assert reading is not None and reading.referral_id is not None
    new = str(reading.referral_id)

    service = headers_for(client, session, mine, "service")
    assert _entries(client, service, status="active") == [new]
    assert _entries(client, service, status="revoked") == [str(closed.id)]
    assert set(_entries(client, service)) == {new, str(closed.id)}
    assert str(theirs.referral.id) not in _entries(client, service)
    assert _entries(client, service, status="active", _count="0") == []

    response = client.get(f"/fhir/ServiceRequest/{new}", headers=service)
    assert response.status_code == 200
    request = ServiceRequest.model_validate(response.json())
    assert (request.status, request.intent) == ("active", "order")
    assert request.subject.identifier is not None
    assert request.subject.identifier.value == "9990000069"
    assert request.performer is not None and request.performer[0].identifier is not None
    assert request.performer[0].identifier.value == mine.service.code
    assert request.code is not None and request.code.coding is not None
    assert request.code.coding[0].code == "710081004"
    assert [r.text for r in request.reasonCode or []] == ["co_elevated"]
    assert [s.reference for s in request.supportingInfo or []] == [f"Observation/{reading.id}"]


def test_unknown_status_or_parameter_is_400(
    client: TestClient, session: Session, sides: tuple[Side, Side]
) -> None:
    service = headers_for(client, session, sides[0], "service")
    for params in ({"status": "draft"}, {"patient": "1"}):
        response = client.get("/fhir/ServiceRequest", params=params, headers=service)
        assert response.status_code == 400
        assert response.json()["resourceType"] == "OperationOutcome"
