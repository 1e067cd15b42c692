"""A delivered message keeps her details for the retention period, then only its thin form."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import DeliverySettings, Settings
from referral.delivery.jobs import reduce_payloads_job
from referral.delivery.service import reduce_delivered_payloads
from referral.delivery.webhooks import THIN_KEYS
from referral.models import OutboxMessage
from tests import factories
from tests.referral.delivery.conftest import World

NHS_NUMBER = "9434765919"  # the world's woman


def _message(
    session: Session, world: World, *, status: str, days_ago: float, now: dt.datetime
) -> OutboxMessage:
    """A message for the world's referral, sent (or not) ``days_ago``."""
    message = factories.make_outbox_message(session, referral=world.referral, now=now)
    message.status = status
    message.created_at = now - dt.timedelta(days=days_ago, hours=1)
    if status == "delivered":
        message.delivered_at = now - dt.timedelta(days=days_ago)
    session.flush()
    return message


def _job_factory(session: Session) -> sessionmaker[Session]:
    """The job's sessions, on the test's connection (their commits are savepoints)."""
    return sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint")


def _stored(session: Session, message: OutboxMessage) -> OutboxMessage:
    session.expire_all()
    return session.scalars(select(OutboxMessage).where(OutboxMessage.id == message.id)).one()


def test_after_the_retention_period_a_delivered_message_keeps_no_details_of_her(
    session: Session, world: World, settings: Settings
) -> None:
    now = dt.datetime.now(dt.UTC)
    old = _message(session, world, status="delivered", days_ago=31, now=now)
    recent = _message(session, world, status="delivered", days_ago=29, now=now)
    pending = _message(session, world, status="pending", days_ago=40, now=now)
    failed = _message(session, world, status="failed", days_ago=40, now=now)
    full = dict(recent.payload)
    assert NHS_NUMBER in json.dumps(full)

    assert reduce_payloads_job(_job_factory(session), settings) == 1

    reduced = _stored(session, old)
    assert reduced.payload == {
        "type": "referral.created",
        "timestamp": full["timestamp"],
        "data": {
            "referral_id": world.referral.id,
            "service_code": world.service.code,
            "status": "pending",
            "url": f"/api/v1/referrals/{world.referral.id}",
        },
    }
    assert set(reduced.payload["data"]) == set(THIN_KEYS)
    assert reduced.payload_reduced_at is not None
    assert reduced.status == "delivered" and reduced.webhook_id == old.webhook_id
    for kept in (recent, pending, failed):
        stored = _stored(session, kept)
        assert NHS_NUMBER in json.dumps(stored.payload)
        assert stored.payload_reduced_at is None
    assert reduce_payloads_job(_job_factory(session), settings) == 0  # nothing more to do


def test_the_retention_period_is_a_setting(
    session: Session, world: World, settings: Settings
) -> None:
    now = dt.datetime.now(dt.UTC)
    message = _message(session, world, status="delivered", days_ago=31, now=now)
    longer = settings.model_copy(update={"delivery": DeliverySettings(delivered_payload_days=60)})
    assert reduce_payloads_job(_job_factory(session), longer) == 0
    assert NHS_NUMBER in json.dumps(_stored(session, message).payload)
    shorter = settings.model_copy(update={"delivery": DeliverySettings(delivered_payload_days=1)})
    assert reduce_payloads_job(_job_factory(session), shorter) == 1
    assert NHS_NUMBER not in json.dumps(_stored(session, message).payload)


def test_messages_are_reduced_in_batches_in_the_order_they_were_written(
    session: Session, world: World
) -> None:
    now = dt.datetime.now(dt.UTC)
    messages = [
        _message(session, world, status="delivered", days_ago=days, now=now)
        for days in (50, 40, 35)
    ]
    before = now - dt.timedelta(days=30)
    assert reduce_delivered_payloads(session, delivered_before=before, now=now, limit=2) == 2
    assert [_stored(session, m).payload_reduced_at is not None for m in messages] == [
        True,
        True,
        False,
    ]
    assert reduce_delivered_payloads(session, delivered_before=before, now=now, limit=2) == 1
    assert reduce_delivered_payloads(session, delivered_before=before, now=now, limit=2) == 0
