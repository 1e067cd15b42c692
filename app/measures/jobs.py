"""Background job for the measures: recount the unit-months that writes have changed."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.clock import local_today
from app.config import Settings
from app.db import session_scope
from app.logs import get_logger
from app.measures import rollup

log = get_logger(__name__)


def refresh_measures_job(factory: sessionmaker[Session], settings: Settings) -> int:
    with session_scope(factory) as session:
        done = rollup.refresh(session, settings.measures, today=local_today())
    if done.pairs:
        log.info("measures_refreshed", unit_months=done.pairs, marks=done.marks)
    return done.pairs
