"""CO tests posted as FHIR R4 Observations: recorded through the readings service, read back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.pregnancies.models import Pregnancy
from app.readings.models import Reading
from referral.models import Referral
from tests.app.access_world import Side, build_side, headers_for
from tests.app.readings_helpers import due_for, reading
from tests.fhir.helpers import EPR_SYSTEM, FHIR_JSON, co_observation, issue, stored

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
EDD = due_for(100, NOW.date())
NHS = "9990000069"
OTHER_NHS = "9990000077"


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


@pytest.fixture
def epr(client: TestClient, session: Session, side: Side) -> dict[str, str]:
    return {**headers_for(client, session, side, "epr"), **FHIR_JSON}


def _post(client: TestClient, headers: dict[str, str], body: Any, **kw: Any) -> Any:
    return client.post("/fhir/Observation", json=body, headers=headers, **kw)


def test_a_co_observation_is_recorded_and_read_back(
    client: TestClient, epr: dict[str, str], session: Session, side: Side
) -> None:
    body = co_observation(nhs_number=NHS, when=NOW, ppm=2, identifier="obs-1", edd=EDD)
    body["device"] = {"identifier": {"value": "PB-104233"}}
    response = _post(client, epr, body)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    created = Observation.model_validate(response.json())
    assert created.valueQuantity is not None and created.valueQuantity.value == 2
    assert response.headers["location"].endswith(f"/fhir/Observation/{created.id}/_history/1")

    session.expire_all()
    stored_reading = session.get(Reading, int(str(created.id)))
    assert stored_reading is not None
    assert stored_reading.source_id == f"{EPR_SYSTEM}|obs-1"
    assert stored_reading.device_serial == "PB-104233"
    pregnancy = session.get(Pregnancy, stored_reading.pregnancy_id)
    assert pregnancy is not None and pregnancy.unit_id == side.unit.id
    assert pregnancy.estimated_due_date == EDD

    read = client.get(f"/fhir/Observation/{created.id}", headers=epr)
    assert read.status_code == 200
    again = Observation.model_validate(read.json())
    assert again.subject is not None and again.subject.identifier is not None
    assert again.subject.identifier.value == NHS
    assert again.identifier is not None and again.identifier[0].value == "obs-1"
    assert again.effectiveDateTime == NOW


def test_conditional_create_answers_200_with_the_stored_observation(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    body = co_observation(nhs_number=NHS, when=NOW, identifier="obs-2", edd=EDD)
    condition = {"If-None-Exist": f"identifier={EPR_SYSTEM}|obs-2"}
    first = _post(client, {**epr, **condition}, body)
    assert first.status_code == 201, first.text
    before = stored(session)
    second = _post(client, {**epr, **condition}, body)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    # The identifier alone is enough: the unique constraint answers a re-send too.
    third = _post(client, epr, body)
    assert (third.status_code, third.json()["id"]) == (200, first.json()["id"])
    assert stored(session) == before


def test_if_none_exist_matching_two_observations_is_412(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    for system in ("https://a.example/id", "https://b.example/id"):
        body = co_observation(nhs_number=NHS, when=NOW, edd=EDD)
        body["identifier"] = [{"system": system, "value": "same"}]
        assert _post(client, epr, body).status_code == 201
    before = stored(session)
    body = co_observation(nhs_number=NHS, when=NOW, edd=EDD)
    body["identifier"] = [{"system": "https://a.example/id", "value": "same"}]
    response = _post(client, {**epr, "If-None-Exist": "identifier=same"}, body)
    assert response.status_code == 412
    assert issue(response)["code"] == "multiple-matches"
    assert stored(session) == before


def test_without_a_current_pregnancy_the_due_date_extension_is_asked_for(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    before = stored(session)
    response = _post(client, epr, co_observation(nhs_number=OTHER_NHS, when=NOW))
    assert response.status_code == 422
    found = issue(response)
    assert found["expression"] == ["Observation.extension"]
    assert "estimated-due-date" in found["diagnostics"]
    assert "/api/v1/readings" in found["diagnostics"]
    assert stored(session) == before


def test_a_smoking_status_observation_with_its_co_test_refers_her(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    body = co_observation(nhs_number=NHS, when=NOW, ppm=None, edd=EDD)
    body["code"] = {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]}
    body["valueCodeableConcept"] = {
        "coding": [{"system": "http://snomed.info/sct", "code": "77176002"}]
    }
    body["component"] = [
        {
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "251900003"}]},
            "dataAbsentReason": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "code": "asked-declined",
                    }
                ]
            },
        }
    ]
    response = _post(client, epr, body)
    assert response.status_code == 201, response.text
    session.expire_all()
    recorded = session.get(Reading, int(response.json()["id"]))
    assert recorded is not None
    assert (recorded.outcome, recorded.co_ppm, recorded.smoking_status) == (
        "declined",
        None,
        "smoker",
    )
    referral = session.get(Referral, recorded.referral_id)
    assert referral is not None and referral.reasons == ["self_reported_smoker"]
    status = response.json()["component"][0]["valueCodeableConcept"]["coding"][0]["code"]
    assert status == "77176002"

    del body["component"]
    refused = _post(client, epr, body)
    assert refused.status_code == 422
    assert "251900003" in issue(refused)["diagnostics"]


@pytest.mark.parametrize(
    ("code", "status"),
    [("8517006", "ex_smoker"), ("8392000", "non_smoker"), ("266919005", "non_smoker")],
)
def test_smoking_status_codes_map_to_the_apps_statuses(
    client: TestClient, epr: dict[str, str], session: Session, code: str, status: str
) -> None:
    body = co_observation(nhs_number=NHS, when=NOW, ppm=1, edd=EDD, smoking=code)
    response = _post(client, epr, body)
    assert response.status_code == 201, response.text
    session.expire_all()
    recorded = session.get(Reading, int(response.json()["id"]))
    assert recorded is not None and recorded.smoking_status == status


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def _bad_bodies() -> list[tuple[str, Any, int, str]]:
    good = co_observation(nhs_number=NHS, when=NOW, ppm=5, edd=EDD)
    percent = {**good, "valueQuantity": {"value": 5, "unit": "%", "code": "%"}}
    percent["valueQuantity"]["system"] = "http://unitsofmeasure.org"
    bad_nhs = co_observation(nhs_number="9990000068", when=NOW, ppm=5, edd=EDD)
    return [
        ("wrong resource type", {**good, "resourceType": "Patient"}, 400, "structure"),
        ("R5-only field", {**good, "triggeredBy": [{"type": "reflex"}]}, 422, "structure"),
        ("missing subject", _without(good, "subject"), 422, "required"),
        ("missing code", _without(good, "code"), 422, "required"),
        ("missing status", _without(good, "status"), 422, "required"),
        ("status preliminary", {**good, "status": "preliminary"}, 422, "invalid"),
        ("quantity in %", percent, 422, "invalid"),
        ("fractional ppm", co_observation(nhs_number=NHS, when=NOW, ppm=4.5), 422, "invalid"),
        ("NHS number failing its check", bad_nhs, 422, "invalid"),
        ("no time", _without(good, "effectiveDateTime"), 422, "required"),
        ("no resourceType", _without(good, "resourceType"), 400, "structure"),
        ("a JSON array", [good], 400, "structure"),
    ]


@pytest.mark.parametrize(
    ("name", "body", "status", "code"), _bad_bodies(), ids=[b[0] for b in _bad_bodies()]
)
def test_bad_input_is_an_operation_outcome_and_nothing_is_stored(
    client: TestClient,
    epr: dict[str, str],
    session: Session,
    name: str,
    body: Any,
    status: int,
    code: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = stored(session)
    response = _post(client, epr, body)
    logged = capsys.readouterr().err + caplog.text
    assert "route" in logged  # the access log was captured, and names no patient
    assert "99900000" not in logged
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert issue(response)["code"] == code
    assert issue(response)["severity"] == "error"
    assert "99900000" not in response.text  # no NHS number echoed
    assert stored(session) == before


def test_a_body_that_is_not_json_is_400_and_wrong_media_type_is_refused(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    before = stored(session)
    broken = client.post("/fhir/Observation", content=b'{"resourceType": ', headers=epr)
    assert broken.status_code == 400
    assert issue(broken)["code"] == "structure"
    as_xml = client.post(
        "/fhir/Observation",
        content=b"<Observation/>",
        headers={**epr, "Content-Type": "application/fhir+xml"},
    )
    assert as_xml.status_code == 415
    assert issue(as_xml)["code"] == "not-supported"
    assert stored(session) == before


def test_unknown_ids_and_endpoints_answer_operation_outcomes(
    client: TestClient, epr: dict[str, str]
) -> None:
    for path in ("/fhir/Observation/999999", "/fhir/Observation/abc", "/fhir/Patient/1"):
        response = client.get(path, headers=epr)
        assert response.status_code == 404, path
        assert issue(response)["code"] == "not-found"
    deleted = client.delete("/fhir/Observation/1", headers=epr)
    assert deleted.status_code == 405
    assert issue(deleted)["code"] == "not-supported"


def _seed_three(client: TestClient, epr: dict[str, str]) -> list[str]:
    ids = []
    for nhs, when in ((NHS, NOW - dt.timedelta(days=3)), (NHS, NOW), (OTHER_NHS, NOW)):
        body = co_observation(nhs_number=nhs, when=when, edd=EDD)
        response = _post(client, epr, body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def test_search_by_patient_code_and_date_returns_a_searchset_bundle(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    older, newer, other = _seed_three(client, epr)
    by_patient = client.get(
        "/fhir/Observation",
        params={"subject:identifier": f"https://fhir.nhs.uk/Id/nhs-number|{NHS}"},
        headers=epr,
    )
    assert by_patient.status_code == 200, by_patient.text
    bundle = Bundle.model_validate(by_patient.json())
    assert bundle.type == "searchset" and bundle.total == 2
    assert [e.resource.id for e in bundle.entry or []] == [newer, older]  # type: ignore[union-attr]

    def ids(params: dict[str, str]) -> list[str]:
        response = client.get("/fhir/Observation", params=params, headers=epr)
        assert response.status_code == 200, response.text
        return [e["resource"]["id"] for e in response.json()["entry"]]

    since = (NOW - dt.timedelta(days=1)).date().isoformat()
    assert ids({"patient.identifier": NHS, "date": f"ge{since}"}) == [newer]
    assert ids({"patient.identifier": NHS, "date": f"lt{since}"}) == [older]
    assert set(ids({"code": "http://snomed.info/sct|251900003"})) == {older, newer, other}
    assert ids({"code": "http://loinc.org|1234-5"}) == []
    searched = session.scalars(
        select(AuditEvent.record_id).where(AuditEvent.action == "search")
    ).all()
    assert {older, newer} <= set(searched)


def test_bad_searches_are_400_without_echoing_the_number(
    client: TestClient, epr: dict[str, str]
) -> None:
    for params in ({"subject:identifier": "9990000068"}, {"name": "Jane"}, {"date": "yesterday"}):
        response = client.get("/fhir/Observation", params=params, headers=epr)
        assert response.status_code == 400, params
        assert "9990000068" not in response.text


def test_a_read_is_audited_like_a_rest_read(
    client: TestClient, epr: dict[str, str], session: Session, side: Side
) -> None:
    created = _post(client, epr, co_observation(nhs_number=NHS, when=NOW, edd=EDD)).json()
    client.get(f"/fhir/Observation/{created['id']}", headers=epr)
    rows = session.scalars(
        select(AuditEvent).where(
            AuditEvent.record_type == "reading", AuditEvent.record_id == created["id"]
        )
    ).all()
    assert [(r.action, r.outcome, r.actor_name) for r in rows] == [
        ("create", "allowed", side.client_names["epr"]),
        ("read", "allowed", side.client_names["epr"]),
    ]


def test_a_5_ppm_fhir_reading_refers_her_as_a_rest_reading_does(
    client: TestClient, epr: dict[str, str], session: Session
) -> None:
    fhir_answer = _post(client, epr, co_observation(nhs_number=NHS, when=NOW, ppm=5, edd=EDD))
    assert fhir_answer.status_code == 201, fhir_answer.text
    rest_answer = client.post(
        "/api/v1/readings",
        json=reading(on=NOW.date(), co_ppm=5, nhs_number=OTHER_NHS, edd=EDD),
        headers=epr,
    )
    assert rest_answer.status_code == 201, rest_answer.text
    session.expire_all()
    by_fhir = session.get(Reading, int(fhir_answer.json()["id"]))
    by_rest = session.get(Reading, rest_answer.json()["id"])
    assert by_fhir is not None and by_rest is not None
    referrals = [session.get(Referral, r.referral_id) for r in (by_fhir, by_rest)]
    assert all(r is not None for r in referrals)
    shapes = [(r.status, r.reasons, r.service_id) for r in referrals if r is not None]
    assert shapes[0] == shapes[1] == ("pending", ["co_elevated"], shapes[0][2])
    assert by_fhir.advice == by_rest.advice


def test_metadata_lists_exactly_what_is_supported(client: TestClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = CapabilityStatement.model_validate(response.json())
    assert statement.fhirVersion == "4.0.1"
    (rest,) = statement.rest or []
    resources = {r.type: r for r in rest.resource or []}
    assert set(resources) == {"Observation", "ServiceRequest"}
    observation = resources["Observation"]
    assert [i.code for i in observation.interaction or []] == ["create", "read", "search-type"]
    assert observation.conditionalCreate is True
    assert {p.name for p in observation.searchParam or []} == {"patient", "code", "date"}
    assert [i.code for i in resources["ServiceRequest"].interaction or []] == [
        "read",
        "search-type",
    ]
