"""Background jobs for identity: ending idle and expired web sessions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import session_scope, utcnow
from app.identity.service import SessionPolicy, prune_web_sessions
from app.logs import get_logger

log = get_logger(__name__)


def prune_sessions_job(factory: sessionmaker[Session], settings: Settings) -> int:
    policy = SessionPolicy(
        idle=dt.timedelta(minutes=settings.auth.session_idle_minutes),
        maximum=dt.timedelta(hours=settings.auth.session_max_hours),
    )
    with session_scope(factory) as session:
        removed = prune_web_sessions(session, now=utcnow(), policy=policy)
    if removed:
        log.info("web_sessions_pruned", count=removed)
    return removed
