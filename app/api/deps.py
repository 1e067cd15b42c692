"""Typed dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.audit.service import pending_denials, write_pending_denials
from app.config import Settings
from app.fields import MAX_RECORD_ID
from app.logs import get_logger

log = get_logger(__name__)


async def get_settings_dep(request: Request) -> Settings:
    """Async, as it does no I/O: FastAPI runs a plain function dependency in a worker thread."""
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, committed before the response is sent, rolled back on any error.

    Async, so that opening it (no I/O: it connects on first use) and closing a session the
    endpoint already committed cost no worker-thread hop; committing or rolling back runs in a
    worker thread, as every database call does.
    """
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    except BaseException:
        with anyio.CancelScope(shield=True):  # a cancelled request still ends its transaction
            await run_in_threadpool(_roll_back, session)
        raise
    if _idle(session):
        session.close()
    else:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_commit, session)


def _idle(session: Session) -> bool:
    """Nothing left to write or end: no transaction, no pending change, no denial to record."""
    return not (
        session.in_transaction()
        or session.new
        or session.dirty
        or session.deleted
        or pending_denials(session)
    )


def _commit(session: Session) -> None:
    try:
        write_pending_denials(session)
        session.commit()
    except BaseException:
        _roll_back(session)  # closes the session
        raise
    session.close()


def _roll_back(session: Session) -> None:
    try:
        session.rollback()
        _commit_denials_alone(session)
    finally:
        session.close()


def _commit_denials_alone(session: Session) -> None:
    """After a rollback, still record the denied attempts that led to it."""
    try:
        write_pending_denials(session)
        session.commit()
    except Exception as error:  # the original error is the one the caller must see
        session.rollback()
        log.error("audit_denial_not_written", error_type=type(error).__name__)


# scope="function": the commit runs before the response goes out, so a failed commit is never a 2xx.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RecordId = Annotated[int, Path(ge=1, le=MAX_RECORD_ID, description="The record's id")]
