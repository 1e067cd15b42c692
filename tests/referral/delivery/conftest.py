"""Fixtures for delivery tests: a real receiver, a clock the test moves, a relay on the test's
connection (its commits are savepoints the test rolls back)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from app.config import DeliverySettings
from app.orgs.models import Organisation
from referral.delivery.relay import Relay
from referral.delivery.sending import TransportFactory
from referral.models import Referral
from tests import factories
from tests.referral.delivery.receiver import Receiver

FAST = DeliverySettings(
    connect_timeout_s=0.5, read_timeout_s=0.5, attempt_deadline_s=2.0, lease_s=4.0
)


class Clock:
    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now

    def to(self, when: dt.datetime) -> dt.datetime:
        self.now = max(self.now, when)
        return self.now


@dataclass
class World:
    service: Organisation
    unit: Organisation
    referral: Referral


@pytest.fixture
def world(session: Session) -> World:
    service = factories.make_service(session)
    unit = factories.make_unit(session, service=service)
    # A fixed due date: the payloads these tests compare are built at fixed times.
    pregnancy = factories.make_pregnancy(session, unit=unit, estimated_due_date=dt.date(2027, 3, 1))
    referral = factories.make_referral(session, pregnancy=pregnancy, service=service)
    return World(service, unit, referral)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver().running() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_relay(connection: Connection):  # type: ignore[no-untyped-def]
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")

    def make(
        *,
        clock: Clock | None = None,
        settings: DeliverySettings = FAST,
        allow_private: bool = True,
        transport: TransportFactory | None = None,
    ) -> Relay:
        return Relay(
            factory,
            settings,
            allow_private=allow_private,
            clock=clock or (lambda: dt.datetime.now(dt.UTC)),
            rng=random.Random(6),
            transport_factory=transport,
        )

    return make
