"""An off-the-shelf FHIR client (fhirpy) against a real exhale server: create, read, search."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, OperationOutcome, ResourceNotFound

from app import migrate
from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope
from app.readings.models import Reading
from referral.models import Referral
from tests import factories
from tests.app.readings_helpers import due_for, reading
from tests.fhir.helpers import EPR_SYSTEM, co_observation
from tests.server import running_server

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
EDD = due_for(100, NOW.date())
NHS = "9990000069"
REST_NHS = "9990000077"


@dataclass(frozen=True)
class World:
    base_url: str
    database_url: str
    epr_key: str
    service_key: str


@pytest.fixture
def world(fresh_database_url: str) -> Iterator[World]:
    migrate.upgrade(fresh_database_url)
    engine = make_engine(fresh_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service = factories.make_service(session)
            unit = factories.make_unit(session, service=service)
            _epr, epr_key = factories.make_api_client(session, role="epr", organisation=unit)
            _svc, service_key = factories.make_api_client(
                session, role="service", organisation=service
            )
    finally:
        engine.dispose()
    settings = Settings(database_url=fresh_database_url, log_level="WARNING")
    with running_server(settings) as url:
        yield World(url, fresh_database_url, epr_key, service_key)


def _client(world: World, key: str, **headers: str) -> SyncFHIRClient:
    return SyncFHIRClient(
        f"{world.base_url}/fhir", authorization=f"Bearer {key}", extra_headers=headers or None
    )


def _referral_of(database_url: str, reading_id: int) -> tuple[Any, ...]:
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            stored = session.get(Reading, reading_id)
            assert stored is not None and stored.referral_id is not None
            referral = session.get(Referral, stored.referral_id)
            assert referral is not None
            return (referral.status, referral.reasons, referral.service_id, stored.advice)
    finally:
        engine.dispose()


def test_fhirpy_creates_reads_and_searches_observations(world: World) -> None:
    epr = _client(world, world.epr_key)
    body = co_observation(nhs_number=NHS, when=NOW, ppm=5, identifier="fhirpy-1", edd=EDD)
    created = epr.resource("Observation", **body)
    created.save()
    assert created.id
    assert created["valueQuantity"]["value"] == 5

    conditional = _client(
        world, world.epr_key, **{"If-None-Exist": f"identifier={EPR_SYSTEM}|fhirpy-1"}
    )
    again = conditional.resource("Observation", **body)
    again.save()
    assert again.id == created.id

    read = epr.reference("Observation", created.id).to_resource()
    assert read["subject"]["identifier"]["value"] == NHS
    assert read["code"]["coding"][0]["code"] == "251900003"

    found = (
        epr.resources("Observation")
        .search(**{"subject:identifier": f"https://fhir.nhs.uk/Id/nhs-number|{NHS}"})
        .search(code="http://snomed.info/sct|251900003", date=f"ge{NOW.date().isoformat()}")
        .fetch()
    )
    assert [r.id for r in found] == [created.id]
    assert epr.resources("Observation").search(date="lt2000-01-01").fetch() == []

    with pytest.raises(ResourceNotFound):
        epr.reference("Observation", "999999").to_resource()
    with pytest.raises(OperationOutcome) as refused:
        epr.resource("Observation", **{**body, "triggeredBy": [{"type": "reflex"}]}).save()
    assert "triggeredBy" in str(refused.value)
    with pytest.raises(AuthorizationError):
        _client(world, "exh_not-a-key").resources("Observation").fetch()


def test_a_fhir_5_ppm_reading_makes_the_same_referral_as_a_rest_one(world: World) -> None:
    epr = _client(world, world.epr_key)
    posted = epr.resource("Observation", **co_observation(nhs_number=NHS, when=NOW, ppm=5, edd=EDD))
    posted.save()
    rest = httpx.post(
        f"{world.base_url}/api/v1/readings",
        json=reading(on=NOW.date(), co_ppm=5, nhs_number=REST_NHS, edd=EDD),
        headers={"Authorization": f"Bearer {world.epr_key}"},
        timeout=30,
    )
    assert rest.status_code == 201, rest.text
    by_fhir = _referral_of(world.database_url, int(str(posted.id)))
    by_rest = _referral_of(world.database_url, rest.json()["id"])
    assert by_fhir == by_rest
    assert by_fhir[:2] == ("pending", ["co_elevated"])

    service = _client(world, world.service_key)
    active = service.resources("ServiceRequest").search(status="active").fetch()
    assert len(active) == 2
    assert {r["status"] for r in active} == {"active"}
    supporting = {s["reference"] for r in active for s in r["supportingInfo"]}
    assert f"Observation/{posted.id}" in supporting
