"""Destinations, signing secrets and their rotation, and which URLs production refuses."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.config import DEFAULT_SEALING_KEY, Environment, Settings
from app.errors import InvalidInput
from referral.delivery import service as delivery
from referral.delivery.models import DeliverySecret, PayloadMode
from referral.delivery.relay import valid_secrets
from referral.delivery.safety import DestinationPolicy, check_destination_url
from referral.delivery.sealing import Sealer, SealError
from referral.delivery.webhooks import new_secret, signed_headers
from tests import factories
from tests.factories import SEALER
from tests.referral.delivery.conftest import World

PRODUCTION = DestinationPolicy(require_https=True, allow_private=False)
DEVELOPMENT = DestinationPolicy(require_https=False, allow_private=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://receiver.example.nhs.uk/hook", "https"),
        ("https://127.0.0.1/hook", "private"),
        ("https://10.20.30.40/hook", "private"),
        ("https://192.168.1.10:8443/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://[::1]/hook", "private"),
        ("https://[::ffff:127.0.0.1]/hook", "private"),
        ("https://localhost:9000/hook", "private"),
        ("https://api.localhost/hook", "private"),
        ("https://user:password@receiver.example.nhs.uk/hook", "user name"),
        ("ftp://receiver.example.nhs.uk/hook", "absolute URL"),
        ("receiver.example.nhs.uk/hook", "absolute URL"),
        ("https://receiver.example.nhs.uk:99999/hook", "port"),
    ],
)
def test_production_refuses_plain_http_and_private_destinations(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_destination_url(url, policy=PRODUCTION)
    assert refused.value.fields[0].field == "url"
    assert reason in refused.value.fields[0].message


def test_production_accepts_a_public_https_url_and_private_ones_only_when_allowed() -> None:
    url = "https://receiver.example.nhs.uk/hooks?tenant=7"
    assert check_destination_url(f"  {url} ", policy=PRODUCTION) == url
    allowed = DestinationPolicy(require_https=True, allow_private=True)
    assert check_destination_url("https://10.1.2.3/hook", policy=allowed)
    assert check_destination_url("http://127.0.0.1:8080/hook", policy=DEVELOPMENT)


def test_the_policy_follows_the_environment_and_the_explicit_setting() -> None:
    production = {"environment": Environment.production, "secret_key": "x" * 32}
    key = Fernet.generate_key().decode()
    assert (
        DestinationPolicy.from_settings(Settings(**production, delivery={"sealing_keys": key}))
        == PRODUCTION
    )
    opened = Settings(
        **production, delivery={"allow_private_destinations": True, "sealing_keys": key}
    )
    assert DestinationPolicy.from_settings(opened).allow_private
    assert DestinationPolicy.from_settings(Settings()) == DEVELOPMENT


def test_a_lease_shorter_than_two_attempts_is_refused() -> None:
    with pytest.raises(ValueError, match="EXHALE_DELIVERY__LEASE_S"):
        Settings(delivery={"lease_s": 30, "attempt_deadline_s": 30})


def _set(session: Session, world: World, url: str = "https://rx.example.nhs.uk/h") -> str | None:
    return delivery.set_destination(
        session,
        service=world.service,
        url=url,
        mode=PayloadMode.thin,
        policy=PRODUCTION,
        now=dt.datetime.now(dt.UTC),
        secret_overlap=dt.timedelta(hours=24),
        sealer=SEALER,
    )[1]


def test_the_first_destination_comes_with_a_secret_and_a_change_keeps_it(
    session: Session, world: World
) -> None:
    secret = _set(session, world)
    assert secret is not None and secret.startswith("whsec_")
    assert _set(session, world, "https://rx2.example.nhs.uk/h") is None
    view = delivery.describe_service(session, service=world.service, now=dt.datetime.now(dt.UTC))
    assert view.destination is not None
    assert (view.destination.url, view.destination.payload_mode) == (
        "https://rx2.example.nhs.uk/h",
        "thin",
    )
    assert len(view.valid_secrets) == 1
    assert secret not in view.model_dump_json()


def test_only_a_stop_smoking_service_has_a_destination(session: Session, world: World) -> None:
    with pytest.raises(InvalidInput, match="not a stop-smoking service"):
        delivery.set_destination(
            session,
            service=world.unit,
            url="https://rx.example.nhs.uk/h",
            mode=PayloadMode.full,
            policy=PRODUCTION,
            now=dt.datetime.now(dt.UTC),
            secret_overlap=dt.timedelta(hours=24),
            sealer=SEALER,
        )


def _verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def test_during_a_rotation_both_secrets_verify_and_never_more_than_two_are_valid(
    session: Session, world: World
) -> None:
    first = factories.make_destination(session, service=world.service)
    now = dt.datetime.now(dt.UTC)
    second = delivery.rotate_secret(
        session, service=world.service, now=now, overlap=dt.timedelta(hours=24), sealer=SEALER
    )
    assert second.previous_valid_until == now + dt.timedelta(hours=24)
    secrets = valid_secrets(session, service_id=world.service.id, now=now, sealer=SEALER)
    assert secrets == [second.secret, first]

    body = b'{"type":"referral.created"}'
    headers = signed_headers(webhook_id="msg_1", timestamp=now, body=body, secrets=secrets)
    assert headers["webhook-signature"].count("v1,") == 2
    assert _verifies(first, headers, body) and _verifies(second.secret, headers, body)
    assert not _verifies(new_secret(), headers, body)

    third = delivery.rotate_secret(
        session, service=world.service, now=now, overlap=dt.timedelta(hours=24), sealer=SEALER
    )
    assert valid_secrets(session, service_id=world.service.id, now=now, sealer=SEALER) == [
        third.secret,
        second.secret,
    ]
    later = now + dt.timedelta(hours=24)
    assert valid_secrets(session, service_id=world.service.id, now=later, sealer=SEALER) == [
        third.secret
    ]


def test_a_signing_secret_is_kept_sealed_and_survives_a_change_of_key(
    session: Session, world: World
) -> None:
    secret = _set(session, world)
    assert secret is not None
    stored = session.scalars(select(DeliverySecret.sealed_secret)).one()
    assert secret.removeprefix("whsec_") not in stored
    now = dt.datetime.now(dt.UTC)
    assert valid_secrets(session, service_id=world.service.id, now=now, sealer=SEALER) == [secret]

    new_key = Fernet.generate_key().decode()
    assert delivery.reseal_secrets(session, sealer=Sealer([new_key, DEFAULT_SEALING_KEY])) == 1
    alone = Sealer([new_key])
    assert valid_secrets(session, service_id=world.service.id, now=now, sealer=alone) == [secret]
    with pytest.raises(SealError, match="add that key back"):
        valid_secrets(session, service_id=world.service.id, now=now, sealer=SEALER)

    resealed = session.scalars(select(DeliverySecret.sealed_secret)).one()
    unrelated = Sealer([Fernet.generate_key().decode()])
    with pytest.raises(SealError):
        delivery.reseal_secrets(session, sealer=unrelated)
    assert session.scalars(select(DeliverySecret.sealed_secret)).one() == resealed
