"""Timestamps are timezone-aware UTC on every database; constraints hold."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from app.orgs.models import Organisation
from tests.factories import make_service, make_unit


def test_timestamps_come_back_as_utc_whatever_zone_went_in(session: Session) -> None:
    service = make_service(session)
    plus_two = dt.timezone(dt.timedelta(hours=2))
    service.created_at = dt.datetime(2026, 5, 1, 12, 0, tzinfo=plus_two)
    session.flush()
    session.expire_all()

    stored = session.scalars(select(Organisation).where(Organisation.id == service.id)).one()
    assert stored.created_at == dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC)
    assert stored.created_at.utcoffset() == dt.timedelta(0)


def test_a_naive_timestamp_is_refused(session: Session) -> None:
    service = make_service(session)
    service.created_at = dt.datetime(2026, 5, 1, 12, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_a_unit_points_at_its_default_service(session: Session) -> None:
    service = make_service(session)
    unit = make_unit(session, service=service)
    session.expire_all()
    assert session.get(Organisation, unit.id).default_service.code == service.code  # type: ignore[union-attr]


def test_organisation_codes_are_unique(session: Session) -> None:
    make_service(session, code="DUPL1")
    with pytest.raises(IntegrityError):
        make_unit(session, code="DUPL1")
