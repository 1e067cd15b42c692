"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.db import SQLITE_DEFERRED
from app.logs import get_logger
from app.migrate import pending_message

router = APIRouter(tags=["health"])
log = get_logger(__name__)


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database is reachable and its migrations are at head",
    responses={503: {"description": "Not ready; `reason` says why and what to do"}},
)
def readyz(request: Request) -> JSONResponse:
    try:
        with request.app.state.engine.connect() as connection:
            connection.execution_options(**{SQLITE_DEFERRED: True})
            connection.execute(text("SELECT 1"))
            behind = pending_message(connection)
    except SQLAlchemyError as error:
        log.warning("readiness_database_unreachable", error_type=type(error).__name__)
        return JSONResponse(
            {
                "status": "unavailable",
                "reason": "database unreachable: check EXHALE_DATABASE_URL and that the "
                "database server is running",
            },
            status_code=503,
        )
    if behind is not None:
        return JSONResponse({"status": "unavailable", "reason": behind}, status_code=503)
    return JSONResponse({"status": "ready"})
