"""The relay: claims due outbox messages, sends them, and records what happened.

Three short steps, none of which holds a transaction or a row lock while a receiver is talking:

1. **Claim** (one transaction): a single ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
   LOCKED) RETURNING`` pushes each due row's ``next_attempt_at`` forward by the lease and counts
   the attempt. Two workers never claim one row (PostgreSQL skips rows another is claiming; SQLite
   has one writer at a time). The attempt's deadline runs from the claim and the lease is at least
   twice as long, so a row is claimable again only after its attempt has ended, or its worker
   died: then it is sent again with the same ``webhook-id`` (at-least-once; receivers dedupe).
2. **Send** (no transaction, ``sending``): https POST with connect and read timeouts, a deadline
   for the whole attempt, redirects not followed, at most ``max_response_bytes`` of the answer read.
3. **Record** (one transaction): delivered on 2xx only; otherwise the next attempt after an
   exponential backoff with jitter, or ``Retry-After`` when the receiver gives one, until the
   retry window (3 days) has passed: then the message fails (a dead letter for the admin).
   The update is fenced on the attempt count the claim returned, so a worker that lost its lease
   cannot overwrite a newer attempt's result.

A referral's events reach a service in order: a message is not claimed while an earlier message
of the same referral to the same service is not yet delivered (pending or failed). Messages wait,
never fail, while their service has no active destination or no valid signing secret, or while
no configured sealing key opens its secret.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Update, and_, exists, or_, select, update
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.orm import Session, aliased, sessionmaker

from app.config import DeliverySettings
from app.db import session_scope, utcnow
from app.logs import get_logger
from app.orgs.models import Organisation
from referral.delivery.models import (
    DeliveryDestination,
    DeliverySecret,
    OutboxDeliveryState,
    PayloadMode,
)
from referral.delivery.sealing import Sealer, SealError
from referral.delivery.sending import AttemptResult, TransportFactory, send
from referral.delivery.webhooks import encode, project, signed_headers
from referral.models import OutboxMessage, OutboxStatus

log = get_logger(__name__)

Clock = Callable[[], dt.datetime]
_PENDING, _DELIVERED, _FAILED = (s.value for s in OutboxStatus)


@dataclass(frozen=True)
class Claim:
    message_id: int
    attempt: int  # the message's attempt count after this claim: fences the result
    claimed_at: dt.datetime


@dataclass(frozen=True)
class PreparedAttempt:
    claim: Claim
    webhook_id: str
    service_code: str
    url: str
    body: bytes
    headers: dict[str, str]
    send_by: float  # time.monotonic(): no byte goes out after this, well inside the lease


def _due(now: dt.datetime, limit: int) -> Select[int]:
    """Ids of messages that may be sent now, oldest due first, locked against other claimers."""
    message = aliased(OutboxMessage, name="due")
    earlier = aliased(OutboxMessage, name="earlier")
    blocked = exists().where(
        earlier.referral_id == message.referral_id,
        earlier.service_id == message.service_id,
        earlier.id < message.id,
        earlier.status != _DELIVERED,
    )
    signable = exists().where(
        DeliverySecret.service_id == message.service_id,
        or_(DeliverySecret.expires_at.is_(None), DeliverySecret.expires_at > now),
    )
    return (
        select(message.id)
        .join(
            DeliveryDestination,
            and_(
                DeliveryDestination.service_id == message.service_id, DeliveryDestination.is_active
            ),
        )
        .where(message.status == _PENDING, message.next_attempt_at <= now, ~blocked, signable)
        .order_by(message.next_attempt_at, message.id)
        .limit(limit)
        .with_for_update(of=message, skip_locked=True)
    )


def claim_due(session: Session, *, now: dt.datetime, lease_s: float, limit: int) -> list[Claim]:
    """Claim up to ``limit`` due messages for ``lease_s`` seconds; one statement."""
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(_due(now, limit)))
        .values(
            attempts=OutboxMessage.attempts + 1,
            last_attempt_at=now,
            next_attempt_at=now + dt.timedelta(seconds=lease_s),
        )
        .returning(OutboxMessage.id, OutboxMessage.attempts)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(statement).all()
    return sorted((Claim(row.id, row.attempts, now) for row in rows), key=lambda c: c.message_id)


def valid_secrets(
    session: Session, *, service_id: int, now: dt.datetime, sealer: Sealer
) -> list[str]:
    """The service's secrets valid at ``now``, newest first (two during a rotation), opened.

    Raises ``SealError`` when one is sealed with a key no longer configured.
    """
    statement = (
        select(DeliverySecret.sealed_secret)
        .where(
            DeliverySecret.service_id == service_id,
            or_(DeliverySecret.expires_at.is_(None), DeliverySecret.expires_at > now),
        )
        .order_by(DeliverySecret.created_at.desc(), DeliverySecret.id.desc())
    )
    return [sealer.open(sealed) for sealed in session.scalars(statement)]


UNOPENED = "not sent: no key in EXHALE_DELIVERY__SEALING_KEYS opens the service's signing secret"
UNSENDABLE = "not sent: the service has no active destination or valid signing secret"


def _hold(session: Session, claim: Claim, reason: str) -> None:
    """Give back a claim that can send nothing: the attempt is not counted, and a retry window
    that earlier failures opened starts again when sending can resume, so the message waits,
    never fails. It is looked at again once the lease ends (a missing destination or secret keeps
    it from being claimed at all)."""
    if rowcount(
        session.execute(
            _fenced(claim).values(attempts=OutboxMessage.attempts - 1, last_error=reason)
        )
    ):
        session.execute(
            update(OutboxDeliveryState)
            .where(OutboxDeliveryState.outbox_message_id == claim.message_id)
            .values(window_started_at=None, window_attempts=0)
            .execution_options(synchronize_session=False)
        )


def prepare(
    session: Session, *, claims: list[Claim], now: dt.datetime, send_by: float, sealer: Sealer
) -> list[PreparedAttempt]:
    """Build each claimed message's body in its destination's mode, signed with every valid secret.

    The body is the payload stored at enqueue time; ``webhook-timestamp`` is this attempt's time.
    A message that cannot be signed or has nowhere to go is held (``_hold``), not attempted.
    """
    prepared = []
    secrets_of: dict[int, list[str]] = {}
    unopened: dict[str, str] = {}
    for claim in claims:
        message = session.get_one(OutboxMessage, claim.message_id)
        service = session.get_one(Organisation, message.service_id)
        destination = session.scalars(
            select(DeliveryDestination).where(DeliveryDestination.service_id == service.id)
        ).one_or_none()
        if service.id not in secrets_of:
            try:
                secrets_of[service.id] = valid_secrets(
                    session, service_id=service.id, now=now, sealer=sealer
                )
            except SealError as error:
                secrets_of[service.id] = []
                unopened[service.code] = str(error)
        secrets = secrets_of[service.id]
        if destination is None or not destination.is_active or not secrets:
            _hold(session, claim, UNOPENED if service.code in unopened else UNSENDABLE)
            continue
        body = encode(project(message.payload, PayloadMode(destination.payload_mode)))
        headers = signed_headers(
            webhook_id=message.webhook_id, timestamp=now, body=body, secrets=secrets
        )
        prepared.append(
            PreparedAttempt(
                claim, message.webhook_id, service.code, destination.url, body, headers, send_by
            )
        )
    for code, detail in unopened.items():  # once per service, however many messages wait
        log.error("delivery_secret_unopened", service=code, detail=detail)
    return prepared


def backoff_s(window_attempts: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: between half and all of min(cap, base x 2^(n-1))."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(window_attempts - 1, 0), 60))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def next_attempt_at(
    *,
    now: dt.datetime,
    window_started_at: dt.datetime,
    window_attempts: int,
    retry_after_s: float | None,
    settings: DeliverySettings,
    rng: random.Random,
) -> dt.datetime | None:
    """When to try again, or None once the retry window (3 days by default) has passed.

    ``Retry-After`` is honoured (at least the backoff base, at most ``retry_after_cap_s``);
    the last attempt is made at the window's end.
    """
    window_ends = window_started_at + dt.timedelta(hours=settings.retry_for_hours)
    if now >= window_ends:
        return None
    if retry_after_s is not None:
        delay = min(max(retry_after_s, settings.backoff_base_s), settings.retry_after_cap_s)
    else:
        delay = backoff_s(
            window_attempts, base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s, rng=rng
        )
    return min(now + dt.timedelta(seconds=delay), window_ends)


def _fenced(claim: Claim) -> Update:
    return (
        update(OutboxMessage)
        .where(
            OutboxMessage.id == claim.message_id,
            OutboxMessage.attempts == claim.attempt,
            OutboxMessage.status == _PENDING,
        )
        .execution_options(synchronize_session=False)
    )


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched (``Session.execute`` is typed as returning a plain Result)."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def _state(session: Session, message_id: int) -> OutboxDeliveryState:
    state = session.get(OutboxDeliveryState, message_id)
    if state is None:
        state = OutboxDeliveryState(outbox_message_id=message_id, window_attempts=0)
        session.add(state)
    return state


def record(
    session: Session,
    *,
    claim: Claim,
    result: AttemptResult,
    now: dt.datetime,
    settings: DeliverySettings,
    rng: random.Random,
) -> OutboxStatus | None:
    """Store the attempt's result; None when the claim was lost (its lease expired and the
    message was claimed again), in which case nothing is changed."""
    state = session.get(OutboxDeliveryState, claim.message_id)
    window_started_at = state.window_started_at if state and state.window_started_at else None
    window_started_at = window_started_at or claim.claimed_at
    window_attempts = (state.window_attempts if state else 0) + 1
    if result.delivered:
        values: dict[str, object] = {"status": _DELIVERED, "delivered_at": now, "last_error": None}
        status = OutboxStatus.delivered
    else:
        retry_at = next_attempt_at(
            now=now,
            window_started_at=window_started_at,
            window_attempts=window_attempts,
            retry_after_s=result.retry_after_s,
            settings=settings,
            rng=rng,
        )
        values = {"last_error": (result.error or "no answer")[:500]}
        if retry_at is None:
            values["status"] = _FAILED
            status = OutboxStatus.failed
        else:
            values["next_attempt_at"] = retry_at
            status = OutboxStatus.pending
    if rowcount(session.execute(_fenced(claim).values(**values))) != 1:
        return None
    state = _state(session, claim.message_id)
    state.window_started_at = window_started_at
    state.window_attempts = window_attempts
    state.last_status_code = result.status_code
    if status is OutboxStatus.failed:
        state.failed_at = now
    return status


class Relay:
    """Claims, sends and records with its own sessions; time, randomness and HTTP injectable."""

    _dead_lettered = itertools.count(1)  # per process: logged with each dead letter

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: DeliverySettings,
        *,
        allow_private: bool,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self._factory = factory
        self._settings = settings
        self._sealer = Sealer.from_settings(settings)
        self._allow_private = allow_private
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not cryptography)
        self._transport_factory = transport_factory
        self._in_flight = 0
        self._lock = threading.Lock()

    def claim(self, limit: int) -> list[PreparedAttempt]:
        # The deadline runs from before the claim: the send ends in the first half of the lease,
        # whatever delays the thread between claiming and sending, and the result can be
        # recorded in the second half, before another relay may claim the message.
        send_by = time.monotonic() + self._settings.attempt_deadline_s
        with session_scope(self._factory) as session:
            now = self._clock()
            claims = claim_due(session, now=now, lease_s=self._settings.lease_s, limit=limit)
            return prepare(session, claims=claims, now=now, send_by=send_by, sealer=self._sealer)

    def deliver(self, attempt: PreparedAttempt) -> OutboxStatus | None:
        """Send one claimed attempt and record its result."""
        started = time.monotonic()
        result = send(
            url=attempt.url,
            body=attempt.body,
            headers=attempt.headers,
            deadline=attempt.send_by,
            settings=self._settings,
            allow_private=self._allow_private,
            now=self._clock(),
            transport_factory=self._transport_factory,
        )
        with session_scope(self._factory) as session:
            status = record(
                session,
                claim=attempt.claim,
                result=result,
                now=self._clock(),
                settings=self._settings,
                rng=self._rng,
            )
        self._log(attempt, result, status, duration_ms=round((time.monotonic() - started) * 1000))
        return status

    def run_once(self, limit: int = 100) -> list[OutboxStatus | None]:
        """Claim what is due now and deliver each, one after another, in this thread."""
        return [self.deliver(attempt) for attempt in self.claim(limit)]

    def _log(
        self,
        attempt: PreparedAttempt,
        result: AttemptResult,
        status: OutboxStatus | None,
        *,
        duration_ms: int,
    ) -> None:
        fields = {
            "outbox_id": attempt.claim.message_id,
            "webhook_id": attempt.webhook_id,
            "service": attempt.service_code,
            "attempt": attempt.claim.attempt,
            "http_status": result.status_code,
            "duration_ms": duration_ms,
        }
        if status is None:
            log.warning("webhook_claim_lost", **fields)
        elif status is OutboxStatus.delivered:
            log.info("webhook_delivered", **fields)
        elif status is OutboxStatus.failed:
            total = next(self._dead_lettered)
            log.error("webhook_failed", error=result.error, dead_lettered_total=total, **fields)
        else:
            log.warning("webhook_attempt_failed", error=result.error, **fields)

    def run(
        self,
        stop: threading.Event,
        *,
        wake: threading.Event,
        poll_interval_s: Callable[[], float],
    ) -> None:
        """Deliver until ``stop``: claim when woken (NOTIFY, a finished send) or at each poll,
        with up to ``concurrency`` sends in flight; then let those in flight finish."""
        capacity = self._settings.concurrency
        log.info("relay_started", concurrency=capacity)
        next_poll = 0.0
        failures = 0
        with ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="webhook") as pool:
            while not stop.is_set():
                wake.wait(timeout=max(0.0, min(0.25, next_poll - time.monotonic())))
                if stop.is_set():
                    break
                if not wake.is_set() and time.monotonic() < next_poll:
                    continue
                wake.clear()
                free = capacity - self._in_flight
                if free <= 0:  # a finishing send wakes the loop; until then, no busy polling
                    next_poll = time.monotonic() + poll_interval_s()
                    continue
                try:
                    attempts = self.claim(free)
                    failures = 0
                except Exception as error:  # the database may be down: wait, never crash
                    failures += 1
                    log.error("relay_claim_failed", error_type=type(error).__name__)
                    wait_s = poll_interval_s() * 2 ** min(failures, 10)
                    next_poll = time.monotonic() + min(30.0, wait_s)
                    continue
                next_poll = time.monotonic() + poll_interval_s()
                for attempt in attempts:
                    with self._lock:
                        self._in_flight += 1
                    pool.submit(self._deliver_then_wake, attempt, wake)
                if len(attempts) == free:
                    wake.set()  # there may be more due
        log.info("relay_stopped")

    def _deliver_then_wake(self, attempt: PreparedAttempt, wake: threading.Event) -> None:
        try:
            self.deliver(attempt)
        except Exception as error:  # the lease expires and the message is tried again
            log.error(
                "webhook_record_failed",
                outbox_id=attempt.claim.message_id,
                error_type=type(error).__name__,
            )
        finally:
            with self._lock:
                self._in_flight -= 1
            wake.set()
