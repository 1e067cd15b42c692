"""Liveness and readiness, including a database that is down or behind its migrations."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


def test_healthz_says_the_process_is_up(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_on_a_migrated_database(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_reports_a_database_that_is_down() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    settings = Settings(
        database_url="postgresql://exhale:secret-password@127.0.0.1:1/exhale",
        database_connect_timeout_s=2,
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "database unreachable" in body["reason"]
    assert "EXHALE_DATABASE_URL" in body["reason"]
    assert "secret-password" not in response.text


def test_readyz_reports_a_database_behind_its_migrations(fresh_database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=fresh_database_url))) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == ("database has no exhale tables yet; run `exhale migrate`")


def test_openapi_page_and_schema_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "exhale"
    assert "/readyz" in schema["paths"]
