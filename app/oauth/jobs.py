"""Background job: forgetting expired access tokens and assertion ids no longer needed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import session_scope, utcnow
from app.logs import get_logger
from app.oauth.service import prune

log = get_logger(__name__)


def prune_oauth_job(factory: sessionmaker[Session], settings: Settings) -> int:
    skew = dt.timedelta(seconds=settings.oauth.clock_skew_s)
    with session_scope(factory) as session:
        removed = prune(session, now=utcnow(), clock_skew=skew)
    if removed:
        log.info("oauth_rows_pruned", count=removed)
    return removed
