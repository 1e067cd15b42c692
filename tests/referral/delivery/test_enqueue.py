"""The outbox contract: one message per referral event, built when the event happens."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.readings.models import Reading
from referral.delivery.models import PayloadMode
from referral.delivery.service import enqueue_referral_event
from referral.delivery.webhooks import encode, project
from referral.models import OutboxMessage
from tests.referral.delivery.conftest import World

NOW = dt.datetime(2026, 11, 26, 10, 30, tzinfo=dt.UTC)


def _reading(session: Session, world: World, *, co_ppm: int, at: dt.datetime) -> Reading:
    reading = Reading(
        pregnancy_id=world.referral.pregnancy_id,
        measured_at=at,
        outcome="measured",
        co_ppm=co_ppm,
        smoking_status="smoker",
    )
    session.add(reading)
    session.flush()
    return reading


def test_the_full_payload_is_what_was_true_when_the_event_happened(
    session: Session, world: World
) -> None:
    _reading(session, world, co_ppm=3, at=NOW - dt.timedelta(days=30))
    _reading(session, world, co_ppm=12, at=NOW - dt.timedelta(hours=1))
    message = enqueue_referral_event(
        session, referral=world.referral, event_type="referral.created", now=NOW
    )
    pregnancy = world.referral.pregnancy_id
    world.referral.status = "contacted"  # later changes do not reach this message
    session.flush()

    stored = session.scalars(select(OutboxMessage).where(OutboxMessage.id == message.id)).one()
    assert stored.status == "pending" and stored.attempts == 0
    assert stored.service_id == world.service.id and stored.referral_id == world.referral.id
    payload = json.loads(encode(stored.payload))
    assert payload["type"] == "referral.created"
    assert payload["timestamp"] == "2026-11-26T10:30:00Z"
    data = payload["data"]
    assert data["referral_id"] == world.referral.id and data["status"] == "pending"
    assert data["reasons"] == ["co_elevated"]
    assert (data["service_code"], data["unit_code"]) == (world.service.code, world.unit.code)
    assert data["url"] == f"/api/v1/referrals/{world.referral.id}"
    assert data["woman"] == {
        "nhs_number": "9434765919",
        "given_name": "Jane",
        "family_name": "Testpatient",
        "date_of_birth": "1995-04-02",
        "phone": "07700 900123",
        "postcode": "LS1 4AP",
        "estimated_due_date": "2027-03-01",
    }
    assert data["latest_co_reading"] == {
        "co_ppm": 12,
        "outcome": "measured",
        "measured_at": "2026-11-26T09:30:00Z",
        "smoking_status": "smoker",
    }
    assert pregnancy is not None


def test_a_woman_without_a_reading_has_none_in_the_payload(session: Session, world: World) -> None:
    message = enqueue_referral_event(
        session, referral=world.referral, event_type="referral.updated", now=NOW
    )
    assert message.payload["data"]["latest_co_reading"] is None


def test_a_thin_body_carries_ids_status_and_the_api_path_only(
    session: Session, world: World
) -> None:
    message = enqueue_referral_event(
        session, referral=world.referral, event_type="referral.closed", now=NOW
    )
    body = encode(project(message.payload, PayloadMode.thin))
    assert json.loads(body) == {
        "type": "referral.closed",
        "timestamp": "2026-11-26T10:30:00Z",
        "data": {
            "referral_id": world.referral.id,
            "service_code": world.service.code,
            "status": "pending",
            "url": f"/api/v1/referrals/{world.referral.id}",
        },
    }
    assert b"9434765919" not in body and b"Testpatient" not in body


def test_every_message_has_its_own_webhook_id_and_the_same_body_bytes_every_time(
    session: Session, world: World
) -> None:
    first = enqueue_referral_event(
        session, referral=world.referral, event_type="referral.created", now=NOW
    )
    second = enqueue_referral_event(
        session, referral=world.referral, event_type="referral.updated", now=NOW
    )
    assert re.fullmatch(r"msg_[0-9a-f]{32}", first.webhook_id)
    assert first.webhook_id != second.webhook_id
    session.expire_all()  # read back from the database (JSONB reorders keys on PostgreSQL)
    again = session.get_one(OutboxMessage, first.id)
    assert encode(again.payload) == encode(first.payload)


def test_enqueue_writes_in_the_callers_transaction_and_never_commits(
    session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_commit() -> None:
        raise AssertionError("enqueue committed")

    monkeypatch.setattr(session, "commit", no_commit)
    savepoint = session.begin_nested()
    message = enqueue_referral_event(
        session, referral=world.referral, event_type="referral.created", now=NOW
    )
    message_id = message.id
    savepoint.rollback()
    assert session.get(OutboxMessage, message_id) is None


def test_an_unknown_event_type_is_refused(session: Session, world: World) -> None:
    with pytest.raises(ValueError, match=r"referral\.created"):
        enqueue_referral_event(
            session, referral=world.referral, event_type="referral.deleted", now=NOW
        )
