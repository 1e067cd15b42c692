"""Typed dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from app.audit.service import write_pending_denials
from app.config import Settings
from app.fields import MAX_RECORD_ID
from app.logs import get_logger

log = get_logger(__name__)


async def get_settings_dep(request: Request) -> Settings:
    """Async, as it does no I/O: FastAPI runs a plain function dependency in a worker thread."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed before the response is sent, rolled back on any error."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        write_pending_denials(session)
        session.commit()
    except BaseException:
        session.rollback()
        _commit_denials_alone(session)
        raise
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
