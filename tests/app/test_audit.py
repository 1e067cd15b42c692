"""The audit trail is append-only on every database, from the application's own connection."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.api.auth import require
from app.audit import service as audit
from app.identity.principal import Principal
from tests.app.access_world import build_side, sign_in


def _one_audit_row(session: Session) -> int:
    audit.record(session, actor=None, action="read", record_type="pregnancy", record_id=1)
    session.flush()
    row_id = session.execute(text("SELECT max(id) FROM audit_event")).scalar_one()
    assert row_id is not None
    return int(row_id)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET outcome = 'allowed', actor_name = 'someone else' WHERE id = :id",
        "DELETE FROM audit_event WHERE id = :id",
    ],
)
def test_audit_rows_cannot_be_changed_or_deleted(
    session: Session, connection: Connection, statement: str
) -> None:
    row_id = _one_audit_row(session)
    savepoint = connection.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        connection.execute(text(statement), {"id": row_id})
    savepoint.rollback()
    assert (
        connection.execute(
            text("SELECT actor_name FROM audit_event WHERE id = :id"), {"id": row_id}
        ).scalar_one()
        == "anonymous"
    )


@pytest.mark.postgres
def test_postgres_refuses_truncate_too(session: Session, connection: Connection) -> None:
    _one_audit_row(session)
    savepoint = connection.begin_nested()
    with pytest.raises(DBAPIError, match="append-only"):
        connection.execute(text("TRUNCATE audit_event"))
    savepoint.rollback()


def test_cookie_authenticated_writes_need_the_csrf_header(
    app: FastAPI, client: TestClient, session: Session
) -> None:
    router = APIRouter()

    @router.post("/api/v1/probe-write")
    def probe(principal: Principal = require("midwife")) -> dict[str, str]:
        return {"by": principal.name}

    app.include_router(router)
    side = build_side(session)
    csrf = sign_in(client, session, side.users["midwife"])
    refused = client.post("/api/v1/probe-write")
    assert refused.status_code == 403
    assert refused.json()["error"] == "csrf_failed"
    accepted = client.post("/api/v1/probe-write", headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 200
    # Machines have no cookie and need no CSRF token.
    client.cookies.clear()
    machine = client.post(
        "/api/v1/probe-write", headers={"Authorization": f"Bearer {side.keys['epr']}"}
    )
    assert machine.status_code == 403  # authenticated, but an EPR is not a midwife
    assert machine.json()["error"] == "forbidden"
