"""Every kind of response carries the security headers: API, pages, static files, errors, 404s."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.main import create_app
from tests.app.access_world import build_side, headers_for

ALWAYS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _assert_protected(response: object, *, patient_data_possible: bool = True) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in ALWAYS.items():
        assert headers.get(name) == value, (name, dict(headers))
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy
    assert "camera=()" in headers["permissions-policy"]
    assert headers.get("x-request-id")
    if patient_data_possible:
        assert headers["cache-control"] == "no-store"


@pytest.fixture
def failing_app(app: FastAPI) -> FastAPI:
    @app.get("/api/v1/test-failure", include_in_schema=False)
    def fail() -> None:
        raise RuntimeError("an unexpected failure")

    return app


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/login", 200),
        ("GET", "/api/v1/referrals", 401),
        ("GET", "/worklist", 401),
        ("GET", "/no/such/page", 404),
        ("DELETE", "/healthz", 405),
        ("POST", "/login", 403),  # no CSRF cookie
        ("GET", "/api/v1/test-failure", 500),
    ],
)
def test_every_kind_of_response_carries_the_headers(
    failing_app: FastAPI, client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status, response.text
    _assert_protected(response)


def test_an_api_answer_with_patient_data_is_never_stored(
    client: TestClient, session: Session
) -> None:
    side = build_side(session)
    headers = headers_for(client, session, side, "epr")
    response = client.get(f"/api/v1/pregnancies/{side.pregnancy.id}", headers=headers)
    assert response.status_code == 200
    _assert_protected(response)


def test_invalid_input_carries_the_headers(client: TestClient, session: Session) -> None:
    side = build_side(session)
    headers = headers_for(client, session, side, "epr")
    response = client.post("/api/v1/readings", headers=headers, json={"co_ppm": "lots"})
    assert response.status_code == 422
    _assert_protected(response)


def test_static_files_carry_the_headers_and_may_be_cached(client: TestClient) -> None:
    for path in ("/static/exhale.css", "/static/exhale.js"):
        response = client.get(path)
        assert response.status_code == 200
        _assert_protected(response, patient_data_possible=False)
        assert "cache-control" not in response.headers
    _assert_protected(client.get("/static/missing.css"), patient_data_possible=False)


def test_the_api_documentation_is_served_without_a_cdn(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "https:" not in policy and "script-src 'self' 'unsafe-inline'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert "/static/api-docs/swagger-ui-bundle.js" in response.text
    assert "cdn." not in response.text and "googleapis" not in response.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = client.get(f"/static/api-docs/{asset}")
        assert served.status_code == 200 and len(served.content) > 10_000
        _assert_protected(served, patient_data_possible=False)
    assert client.get("/redoc", headers={"accept": "application/json"}).status_code == 404


def test_hsts_only_over_https_or_in_production(
    app: FastAPI, database_url: str, settings: Settings
) -> None:
    with TestClient(app) as plain:
        assert "strict-transport-security" not in plain.get("/healthz").headers
    with TestClient(app, base_url="https://exhale.example.nhs.uk") as secure:
        hsts = secure.get("/healthz").headers["strict-transport-security"]
    assert hsts.startswith("max-age=31536000")

    production = Settings(
        database_url=database_url,
        environment="production",
        secret_key="s" * 32,
        delivery={"sealing_keys": Fernet.generate_key().decode()},
    )
    with TestClient(create_app(production)) as behind_a_proxy:
        assert "strict-transport-security" in behind_a_proxy.get("/healthz").headers
    off = settings.model_copy(update={"hsts_max_age_s": 0})
    with TestClient(create_app(off), base_url="https://exhale.example.nhs.uk") as disabled:
        assert "strict-transport-security" not in disabled.get("/healthz").headers
