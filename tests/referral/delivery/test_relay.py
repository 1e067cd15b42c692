"""The relay's decisions, with a scripted transport and a clock the test moves."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import itertools
import json
import random
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy.orm import Session

from app.config import DEFAULT_SEALING_KEY, DeliverySettings
from app.identity.principal import command_line_principal
from app.logs import configure_logging
from referral.delivery import admin as delivery_admin
from referral.delivery import service as delivery
from referral.delivery.models import OutboxDeliveryState
from referral.delivery.relay import Relay, backoff_s, record
from referral.delivery.sending import AttemptResult, TransportFactory, parse_retry_after
from referral.models import OutboxMessage, OutboxStatus
from tests import factories
from tests.referral.delivery.conftest import FAST, Clock, World

MakeRelay = Callable[..., Relay]
ADMIN = command_line_principal("tester")


class Script:
    """Answers requests from a list of responses (the last one repeats); remembers each."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses) or [httpx.Response(200)]
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        template = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        return httpx.Response(template.status_code, headers=template.headers)

    @property
    def transport(self) -> TransportFactory:
        return lambda _deadline: httpx.MockTransport(self)

    def ids(self) -> list[str]:
        return [request.headers["webhook-id"] for request in self.seen]


def _message(session: Session, message_id: int) -> OutboxMessage:
    session.expire_all()
    return session.get_one(OutboxMessage, message_id)


@pytest.fixture
def ready(session: Session, world: World) -> Iterator[World]:
    factories.make_destination(session, service=world.service)
    yield world


@pytest.mark.parametrize("code", [200, 202, 204])
def test_a_2xx_answer_delivers_the_message(
    session: Session, ready: World, make_relay: MakeRelay, code: int
) -> None:
    message = factories.make_outbox_message(session, referral=ready.referral)
    script = Script(httpx.Response(code))
    assert make_relay(transport=script.transport).run_once() == [OutboxStatus.delivered]
    stored = _message(session, message.id)
    assert stored.status == "delivered" and stored.delivered_at is not None
    assert script.ids() == [message.webhook_id]
    assert script.seen[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize("code", [301, 302, 400, 404, 410, 429, 500, 503])
def test_any_other_answer_is_retried_later_with_the_same_webhook_id(
    session: Session, ready: World, make_relay: MakeRelay, clock: Clock, code: int
) -> None:
    message = factories.make_outbox_message(session, referral=ready.referral, now=clock())
    script = Script(httpx.Response(code, headers={"location": "http://169.254.169.254/"}))
    relay = make_relay(transport=script.transport, clock=clock)
    assert relay.run_once() == [OutboxStatus.pending]
    stored = _message(session, message.id)
    assert stored.attempts == 1 and stored.next_attempt_at > clock()
    assert stored.last_error is not None and stored.last_error.startswith(f"HTTP {code}")
    assert relay.run_once() == []  # not before its time
    clock.to(stored.next_attempt_at)
    assert relay.run_once() == [OutboxStatus.pending]
    assert script.ids() == [message.webhook_id] * 2
    assert all(str(r.url).startswith("https://receiver.example.nhs.uk/") for r in script.seen)


def test_retry_after_in_seconds_or_as_a_date_is_honoured(
    session: Session, ready: World, make_relay: MakeRelay, clock: Clock
) -> None:
    message = factories.make_outbox_message(session, referral=ready.referral, now=clock())
    ten_minutes_on = clock() + dt.timedelta(minutes=10)
    in_ten_minutes = email.utils.format_datetime(ten_minutes_on, usegmt=True)
    script = Script(
        httpx.Response(429, headers={"retry-after": "120"}),
        httpx.Response(503, headers={"retry-after": in_ten_minutes}),
        httpx.Response(200),
    )
    relay = make_relay(transport=script.transport, clock=clock)
    relay.run_once()
    assert _message(session, message.id).next_attempt_at == clock() + dt.timedelta(seconds=120)
    clock.advance(seconds=119)
    assert relay.run_once() == []
    clock.advance(seconds=1)
    relay.run_once()
    assert _message(session, message.id).next_attempt_at == ten_minutes_on
    clock.to(ten_minutes_on)
    assert relay.run_once() == [OutboxStatus.delivered]


def test_retry_after_parsing() -> None:
    now = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("30", now=now) == 30
    assert parse_retry_after("Thu, 26 Nov 2026 12:05:00 GMT", now=now) == 300
    assert parse_retry_after("Thu, 26 Nov 2026 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (8, 640), (12, 3600), (80, 3600)]:
        delays = [backoff_s(attempt, base_s=5, cap_s=3600, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempt
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not one value


def _run_until_settled(relay: Relay, session: Session, message_id: int, clock: Clock) -> int:
    """Attempt whenever due until the message leaves pending; returns the attempts made."""
    for attempts in range(1, 1000):
        relay.run_once()
        message = _message(session, message_id)
        if message.status != "pending":
            return attempts
        clock.to(message.next_attempt_at)
    raise AssertionError("never settled")


def test_after_three_days_of_failures_the_message_fails_then_redelivery_sends_it(
    session: Session, ready: World, make_relay: MakeRelay, clock: Clock
) -> None:
    message = factories.make_outbox_message(session, referral=ready.referral, now=clock())
    script = Script(httpx.Response(500))
    relay = make_relay(transport=script.transport, clock=clock, settings=DeliverySettings())
    first_attempt = clock()

    attempts = _run_until_settled(relay, session, message.id, clock)

    failed = _message(session, message.id)
    state = session.get_one(OutboxDeliveryState, message.id)
    assert failed.status == "failed" and state.failed_at is not None
    assert state.failed_at == first_attempt + dt.timedelta(hours=72)  # the last try is at 72 h
    assert failed.last_error == "HTTP 500" and state.last_status_code == 500
    assert 90 < attempts < 120  # 5 s doubling to 30-60 min (jitter): about 105 in 3 days
    stamps = [int(request.headers["webhook-timestamp"]) for request in script.seen]
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert gaps[0] < 10 and max(gaps) <= 3600
    listed = delivery_admin.list_deliveries(session, now=clock(), status=OutboxStatus.failed)
    assert [d.id for d in listed.deliveries] == [message.id]

    clock.advance(days=2)
    delivery_admin.redeliver(session, message_id=message.id, actor=ADMIN, now=clock(), lease_s=120)
    script.responses = [httpx.Response(500), httpx.Response(200)]
    assert relay.run_once() == [OutboxStatus.pending]  # a new window: not failed at once
    clock.to(_message(session, message.id).next_attempt_at)
    assert relay.run_once() == [OutboxStatus.delivered]
    assert set(script.ids()) == {message.webhook_id}
    assert session.get_one(OutboxDeliveryState, message.id).redelivery_count == 1


def test_a_referrals_events_arrive_in_order_and_a_failed_one_holds_the_rest(
    session: Session, ready: World, make_relay: MakeRelay, clock: Clock
) -> None:
    created = factories.make_outbox_message(session, referral=ready.referral, now=clock())
    updated = factories.make_outbox_message(
        session, referral=ready.referral, event_type="referral.updated", now=clock()
    )
    other = factories.make_referral(
        session, pregnancy=factories.make_pregnancy(session, unit=ready.unit), service=ready.service
    )
    unrelated = factories.make_outbox_message(session, referral=other, now=clock())
    script = Script(httpx.Response(500), httpx.Response(200))
    relay = make_relay(transport=script.transport, clock=clock, settings=FAST)

    relay.run_once()  # created fails once; the other referral's message is not held by it
    assert script.ids() == [created.webhook_id, unrelated.webhook_id]
    listed = delivery_admin.list_deliveries(session, now=clock(), status=OutboxStatus.pending)
    waiting = {d.id: (d.waiting_for, d.blocked_by_id) for d in listed.deliveries}
    assert waiting[updated.id] == ("earlier_message", created.id)
    clock.to(_message(session, created.id).next_attempt_at)
    relay.run_once()
    relay.run_once()
    assert script.ids()[2:] == [created.webhook_id, updated.webhook_id]

    # A failed event holds the later ones until it is redelivered.
    closed = factories.make_outbox_message(
        session, referral=other, event_type="referral.closed", now=clock()
    )
    after = factories.make_outbox_message(
        session, referral=other, event_type="referral.updated", now=clock()
    )
    script.responses = [httpx.Response(500)]
    with_one_hour = FAST.model_copy(update={"retry_for_hours": 1})
    short = make_relay(transport=script.transport, clock=clock, settings=with_one_hour)
    _run_until_settled(short, session, closed.id, clock)
    assert _message(session, closed.id).status == "failed"
    assert after.webhook_id not in script.ids()
    delivery_admin.redeliver_failed(session, service=ready.service, actor=ADMIN, now=clock())
    script.responses = [httpx.Response(200)]
    short.run_once()
    short.run_once()
    assert script.ids()[-2:] == [closed.webhook_id, after.webhook_id]


def test_messages_wait_for_a_destination_without_using_their_retry_window(
    session: Session, world: World, make_relay: MakeRelay, clock: Clock
) -> None:
    message = factories.make_outbox_message(session, referral=world.referral, now=clock())
    script = Script(httpx.Response(200))
    relay = make_relay(transport=script.transport, clock=clock)
    assert relay.run_once() == []
    listed = delivery_admin.list_deliveries(session, now=clock())
    assert listed.deliveries[0].waiting_for == "destination"

    clock.advance(days=5)
    assert relay.run_once() == []
    assert _message(session, message.id).status == "pending"
    factories.make_destination(session, service=world.service)
    assert relay.run_once() == [OutboxStatus.delivered]

    delivery.set_destination_active(session, service=world.service, active=False, now=clock())
    paused = factories.make_outbox_message(session, referral=world.referral, now=clock())
    assert relay.run_once() == []
    delivery.set_destination_active(session, service=world.service, active=True, now=clock())
    assert relay.run_once() == [OutboxStatus.delivered]
    assert script.ids() == [message.webhook_id, paused.webhook_id]


def test_a_crashed_attempt_is_sent_again_after_its_lease_and_its_late_result_is_ignored(
    session: Session, ready: World, make_relay: MakeRelay, clock: Clock
) -> None:
    message = factories.make_outbox_message(session, referral=ready.referral, now=clock())
    script = Script(httpx.Response(200))
    relay = make_relay(transport=script.transport, clock=clock)
    (lost,) = relay.claim(10)  # the worker dies here, after the claim
    assert relay.run_once() == []  # leased: nobody else sends it meanwhile
    with pytest.raises(Exception, match="may be being sent"):
        delivery_admin.redeliver(
            session, message_id=message.id, actor=ADMIN, now=clock(), lease_s=4
        )

    clock.advance(seconds=FAST.lease_s)
    assert relay.run_once() == [OutboxStatus.delivered]
    assert script.ids() == [message.webhook_id]
    assert _message(session, message.id).attempts == 2

    stale = record(
        session,
        claim=lost.claim,
        result=AttemptResult(500, "HTTP 500"),
        now=clock(),
        settings=FAST,
        rng=random.Random(0),
    )
    assert stale is None
    assert _message(session, message.id).status == "delivered"


def test_a_delivered_message_is_not_redelivered(
    session: Session, ready: World, make_relay: MakeRelay
) -> None:
    message = factories.make_outbox_message(session, referral=ready.referral)
    make_relay(transport=Script().transport).run_once()
    with pytest.raises(Exception, match="was delivered"):
        delivery_admin.redeliver(
            session,
            message_id=message.id,
            actor=ADMIN,
            now=dt.datetime.now(dt.UTC),
            lease_s=4,
        )


def test_an_attempt_whose_deadline_passed_before_it_started_sends_nothing(
    session: Session, ready: World, make_relay: MakeRelay, clock: Clock
) -> None:
    message = factories.make_outbox_message(session, referral=ready.referral, now=clock())
    script = Script(httpx.Response(200))
    relay = make_relay(transport=script.transport, clock=clock)
    (attempt,) = relay.claim(10)
    starved = dataclasses.replace(attempt, send_by=time.monotonic() - 0.001)
    assert relay.deliver(starved) is OutboxStatus.pending
    assert script.seen == []  # the lease may be running out: better not to send at all
    assert "deadline passed" in (_message(session, message.id).last_error or "")


def test_a_secret_no_key_opens_holds_its_messages_and_names_the_setting_not_the_secret(
    session: Session,
    ready: World,
    make_relay: MakeRelay,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = factories.make_outbox_message(session, referral=ready.referral, now=clock())
    script = Script(httpx.Response(200))
    other_key = Fernet.generate_key().decode()
    wrong = FAST.model_copy(update={"sealing_keys": SecretStr(other_key)})
    configure_logging("INFO", json=True)
    capsys.readouterr()
    assert make_relay(settings=wrong, transport=script.transport, clock=clock).run_once() == []
    logged = capsys.readouterr().err
    held = _message(session, message.id)
    assert script.seen == [] and held.status == "pending" and held.attempts == 0
    assert "EXHALE_DELIVERY__SEALING_KEYS" in (held.last_error or "")
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    (unopened,) = [line for line in lines if line["event"] == "delivery_secret_unopened"]
    assert unopened["level"] == "error" and unopened["service"] == ready.service.code
    assert "EXHALE_DELIVERY__SEALING_KEYS" in unopened["detail"]
    assert "whsec_" not in logged

    # Held, it uses up no retry window: days later it still waits, never failed.
    clock.advance(seconds=FAST.retry_for_hours * 3600 + FAST.lease_s)
    assert make_relay(settings=wrong, transport=script.transport, clock=clock).run_once() == []
    assert _message(session, message.id).status == "pending"

    clock.advance(seconds=FAST.lease_s)
    both = FAST.model_copy(update={"sealing_keys": SecretStr(f"{other_key},{DEFAULT_SEALING_KEY}")})
    assert make_relay(settings=both, transport=script.transport, clock=clock).run_once() == [
        OutboxStatus.delivered
    ]
    assert script.ids() == [message.webhook_id]


def test_a_window_opened_by_failures_starts_again_after_a_hold(
    session: Session, ready: World, make_relay: MakeRelay, clock: Clock
) -> None:
    message = factories.make_outbox_message(session, referral=ready.referral, now=clock())
    script = Script(httpx.Response(500))
    both = FAST.model_copy(
        update={
            "sealing_keys": SecretStr(f"{Fernet.generate_key().decode()},{DEFAULT_SEALING_KEY}")
        }
    )
    assert make_relay(settings=both, transport=script.transport, clock=clock).run_once() == [
        OutboxStatus.pending
    ]  # the receiver failed: the 3-day window is open

    # The key goes missing for longer than the window; the message is held throughout.
    wrong = FAST.model_copy(update={"sealing_keys": SecretStr(Fernet.generate_key().decode())})
    clock.advance(seconds=FAST.retry_for_hours * 3600 + FAST.backoff_cap_s)
    assert make_relay(settings=wrong, transport=script.transport, clock=clock).run_once() == []

    # Back, and the receiver fails once more: a new window, so still pending, not failed.
    clock.advance(seconds=FAST.lease_s)
    assert make_relay(settings=both, transport=script.transport, clock=clock).run_once() == [
        OutboxStatus.pending
    ]
    assert _message(session, message.id).status == "pending"
