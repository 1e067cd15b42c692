"""Every failure reaches the client as the one error body, with a request id and no traceback."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError, ProgrammingError

from app.errors import Conflict, FieldError, InvalidInput


class Probe(BaseModel):
    co_ppm: int = Field(ge=0, le=500)


def _add_probe_routes(app: FastAPI) -> None:
    router = APIRouter()

    @router.post("/probe")
    def probe(body: Probe) -> dict[str, int]:
        return {"co_ppm": body.co_ppm}

    @router.get("/probe/conflict")
    def conflict() -> None:
        raise Conflict("The referral changed since you loaded it; reload and try again.")

    @router.get("/probe/invalid")
    def invalid() -> None:
        raise InvalidInput(
            "Check quit_date.",
            fields=[FieldError("quit_date", "must not be before the referral was made")],
        )

    @router.get("/probe/crash")
    def crash() -> None:
        raise RuntimeError("nhs_number 9434765919 broke something")

    app.include_router(router)


def test_a_domain_error_keeps_its_status_code_and_message(app: FastAPI, client: TestClient) -> None:
    _add_probe_routes(app)
    response = client.get("/probe/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "detail": "The referral changed since you loaded it; reload and try again.",
        "fields": [],
    }


def test_field_errors_name_the_field(app: FastAPI, client: TestClient) -> None:
    _add_probe_routes(app)
    response = client.get("/probe/invalid")
    assert response.status_code == 422
    assert response.json()["fields"] == [
        {"field": "quit_date", "message": "must not be before the referral was made"}
    ]


def test_request_validation_names_the_field_and_does_not_echo_the_value(
    app: FastAPI, client: TestClient
) -> None:
    _add_probe_routes(app)
    response = client.post("/probe", json={"co_ppm": -3})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_input"
    assert [f["field"] for f in body["fields"]] == ["co_ppm"]
    assert "greater than or equal to 0" in body["fields"][0]["message"]
    assert "-3" not in response.text


def test_malformed_json_is_a_4xx_with_the_error_body(app: FastAPI, client: TestClient) -> None:
    _add_probe_routes(app)
    response = client.post(
        "/probe", content=b'{"co_ppm": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


def test_an_unexpected_error_is_a_500_without_traceback_or_patient_data(
    app: FastAPI, client: TestClient
) -> None:
    _add_probe_routes(app)
    response = client.get("/probe/crash", headers={"X-Request-ID": "req-crash-0001"})
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert "req-crash-0001" in body["detail"]
    assert "Traceback" not in response.text
    assert "9434765919" not in response.text
    assert "RuntimeError" not in response.text


def test_unknown_route_and_wrong_method_use_the_error_body(client: TestClient) -> None:
    missing = client.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong_method = client.post("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    echoed = client.get("/healthz", headers={"X-Request-ID": "from-the-epr-123"})
    assert echoed.headers["x-request-id"] == "from-the-epr-123"
    unsafe = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    assert unsafe.headers["x-request-id"] != "bad id <script>"


def test_a_lost_database_is_a_503_to_retry_and_a_bad_query_stays_a_500(
    app: FastAPI, client: TestClient
) -> None:
    router = APIRouter()

    @router.get("/probe/database-gone")
    def database_gone() -> None:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    @router.get("/probe/bad-query")
    def bad_query() -> None:
        raise ProgrammingError("SELEC 1", {}, Exception("syntax error"))

    app.include_router(router)
    gone = client.get("/probe/database-gone")
    assert gone.status_code == 503
    assert gone.headers["retry-after"] == "5"
    assert gone.json()["error"] == "database_unavailable"
    assert "Send it again" in gone.json()["detail"]
    bad = client.get("/probe/bad-query")
    assert bad.status_code == 500
    assert bad.json()["error"] == "internal_error"
