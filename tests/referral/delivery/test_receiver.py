"""Delivery to a real HTTP receiver on 127.0.0.1: signatures, payload modes, and faults."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from referral.delivery.relay import Relay
from referral.models import OutboxMessage, OutboxStatus
from tests import factories
from tests.referral.delivery.conftest import FAST, Clock, World
from tests.referral.delivery.receiver import (
    OK,
    Behaviour,
    Receiver,
    hang_up,
    huge_body,
    respond,
    silent,
)

MakeRelay = Callable[..., Relay]


def _message(session: Session, message_id: int) -> OutboxMessage:
    session.expire_all()
    return session.get_one(OutboxMessage, message_id)


def test_every_delivered_message_verifies_with_the_standard_webhooks_library(
    session: Session, world: World, receiver: Receiver, make_relay: MakeRelay
) -> None:
    secret = factories.make_destination(session, service=world.service, url=receiver.url)
    other = factories.make_referral(
        session, pregnancy=factories.make_pregnancy(session, unit=world.unit), service=world.service
    )
    messages = [
        factories.make_outbox_message(session, referral=world.referral),
        factories.make_outbox_message(session, referral=other),
        factories.make_outbox_message(
            session, referral=world.referral, event_type="referral.closed"
        ),
    ]
    relay = make_relay()
    assert relay.run_once() + relay.run_once() == [OutboxStatus.delivered] * 3

    assert receiver.ids() == [
        messages[0].webhook_id,
        messages[1].webhook_id,
        messages[2].webhook_id,
    ]
    for item, message in zip(receiver.received, messages, strict=True):
        payload = item.verify(secret)
        assert payload == message.payload
        assert abs(int(item.headers["webhook-timestamp"]) - time.time()) < 60
        assert item.headers["content-type"] == "application/json"
        assert item.headers["user-agent"].startswith("exhale-webhooks/")
    assert receiver.received[0].verify(secret)["data"]["woman"]["nhs_number"] == "9434765919"


def test_a_thin_receiver_fetches_the_referral_through_the_audited_api(
    session: Session, world: World, receiver: Receiver, make_relay: MakeRelay, client: TestClient
) -> None:
    secret = factories.make_destination(
        session, service=world.service, url=receiver.url, mode="thin"
    )
    factories.make_outbox_message(session, referral=world.referral)
    _client, key = factories.make_api_client(session, role="service", organisation=world.service)
    make_relay().run_once()

    (item,) = receiver.received
    payload = item.verify(secret)
    assert b"9434765919" not in item.body and b"Testpatient" not in item.body
    response = client.get(payload["data"]["url"], headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    assert response.json()["id"] == world.referral.id
    audited = session.scalars(
        select(AuditEvent).where(
            AuditEvent.record_type == "referral",
            AuditEvent.record_id == str(world.referral.id),
        )
    ).all()
    assert [(a.action, a.outcome, a.role) for a in audited] == [("read", "allowed", "service")]


FAULTS: dict[str, Callable[[Receiver], Behaviour]] = {
    "500": lambda rx: respond(500),
    "429 with Retry-After": lambda rx: respond(429, {"Retry-After": "7"}),
    "301 towards loopback": lambda rx: respond(
        301, {"Location": f"http://127.0.0.1:{rx.port}/elsewhere"}
    ),
    "410": lambda rx: respond(410),
    "1 GB body with a 500": lambda rx: huge_body(500),
    "no answer": lambda rx: silent,
    "connection closed": lambda rx: hang_up,
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_faulty_receiver_is_tried_again_later_and_never_holds_the_relay(
    session: Session, world: World, receiver: Receiver, make_relay: MakeRelay, fault: str
) -> None:
    secret = factories.make_destination(session, service=world.service, url=receiver.url)
    message = factories.make_outbox_message(session, referral=world.referral)
    receiver.behaviour = FAULTS[fault](receiver)
    clock = Clock(dt.datetime.now(dt.UTC))
    relay = make_relay(clock=clock)

    started = time.monotonic()
    assert relay.run_once() == [OutboxStatus.pending]
    assert time.monotonic() - started < FAST.attempt_deadline_s + 1
    assert len(receiver.received) == 1  # no redirect followed, nothing sent twice
    failed = _message(session, message.id)
    assert failed.attempts == 1 and failed.last_error
    assert "token" not in failed.last_error and "127.0.0.1" not in failed.last_error
    if fault == "429 with Retry-After":
        assert failed.next_attempt_at == clock() + dt.timedelta(seconds=7)

    receiver.behaviour = OK
    clock.to(failed.next_attempt_at)
    assert relay.run_once() == [OutboxStatus.delivered]
    assert receiver.ids() == [message.webhook_id] * 2
    receiver.received[-1].verify(secret)


def test_a_huge_answer_is_not_read_to_the_end(
    session: Session, world: World, receiver: Receiver, make_relay: MakeRelay
) -> None:
    factories.make_destination(session, service=world.service, url=receiver.url)
    factories.make_outbox_message(session, referral=world.referral)
    receiver.behaviour = huge_body(200)
    started = time.monotonic()
    assert make_relay().run_once() == [OutboxStatus.delivered]
    assert time.monotonic() - started < FAST.attempt_deadline_s
    receiver.wait_for(lambda: receiver.bytes_sent > 0)
    assert receiver.bytes_sent < 32 * 1024 * 1024  # it hung up after 64 KB, not at 1 GB


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_production_never_connects_to_a_loopback_address(
    session: Session, world: World, receiver: Receiver, make_relay: MakeRelay, host: str
) -> None:
    url = receiver.url.replace("127.0.0.1", host)
    factories.make_destination(session, service=world.service, url=url)
    message = factories.make_outbox_message(session, referral=world.referral)
    assert make_relay(allow_private=False).run_once() == [OutboxStatus.pending]
    assert receiver.received == []
    error = _message(session, message.id).last_error
    assert error is not None and "production refuses" in error
