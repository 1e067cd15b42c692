"""Administration of delivery through the API (role admin) and the `exhale delivery` commands."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from app import migrate
from app.audit.models import AuditEvent
from app.config import DEFAULT_SEALING_KEY
from app.db import make_engine, make_sessionmaker, session_scope
from referral.delivery.models import DeliverySecret
from referral.delivery.relay import valid_secrets
from referral.delivery.sealing import Sealer
from referral.delivery.webhooks import signed_headers
from referral.models import OutboxMessage
from tests import factories
from tests.app.access_world import sign_in
from tests.factories import SEALER
from tests.helpers import invoke_exhale
from tests.referral.delivery.conftest import World


def _fail(session: Session, *messages: OutboxMessage) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_([m.id for m in messages]))
        .values(status="failed", last_error="HTTP 500")
    )
    session.expire_all()


@pytest.fixture
def admin(client: TestClient, session: Session, world: World) -> dict[str, str]:
    user = factories.make_user(session, role="admin", organisation=world.unit)
    return {"X-CSRF-Token": sign_in(client, session, user)}


def test_admin_lists_what_has_not_arrived_and_sends_it_again(
    client: TestClient, session: Session, world: World, admin: dict[str, str]
) -> None:
    factories.make_destination(session, service=world.service)
    first = factories.make_outbox_message(session, referral=world.referral)
    second = factories.make_outbox_message(
        session, referral=world.referral, event_type="referral.updated"
    )
    _fail(session, first)

    listed = client.get("/api/v1/admin/deliveries", headers=admin).json()
    assert listed["counts"] == {"pending": 1, "failed": 1}
    assert [(d["id"], d["status"], d["waiting_for"]) for d in listed["deliveries"]] == [
        (first.id, "failed", None),
        (second.id, "pending", "earlier_message"),
    ]
    assert "9434765919" not in str(listed)
    failed_only = client.get(
        "/api/v1/admin/deliveries",
        params={"status": "failed", "service": world.service.code},
        headers=admin,
    ).json()
    assert [d["id"] for d in failed_only["deliveries"]] == [first.id]

    again = client.post(f"/api/v1/admin/deliveries/{first.id}/redeliver", headers=admin)
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["redelivery_count"]) == ("pending", 1)
    assert again.json()["webhook_id"] == first.webhook_id
    (audit,) = session.scalars(
        select(AuditEvent).where(AuditEvent.record_type == "outbox_message")
    ).all()
    assert (audit.record_id, audit.action, audit.role) == (str(first.id), "update", "admin")
    assert audit.subject_pregnancy_id == world.referral.pregnancy_id

    _fail(session, first, second)
    bulk = client.post(
        f"/api/v1/admin/services/{world.service.code}/deliveries/redeliver", headers=admin
    )
    assert bulk.json() == {"redelivered": 2, "ids": [first.id, second.id]}
    assert (
        client.post("/api/v1/admin/deliveries/999999/redeliver", headers=admin).status_code == 404
    )


def test_admin_rotates_a_secret_and_sees_when_each_ends_but_never_the_secret(
    client: TestClient, session: Session, world: World, admin: dict[str, str]
) -> None:
    old = factories.make_destination(session, service=world.service)
    response = client.post(
        f"/api/v1/admin/services/{world.service.code}/delivery/secret", headers=admin
    )
    assert response.status_code == 200, response.text
    new = response.json()["secret"]
    assert new.startswith("whsec_") and response.json()["previous_valid_until"]

    now = dt.datetime.now(dt.UTC)
    secrets = valid_secrets(session, service_id=world.service.id, now=now, sealer=SEALER)
    headers = signed_headers(webhook_id="msg_x", timestamp=now, body=b"{}", secrets=secrets)
    Webhook(new).verify(b"{}", headers)
    Webhook(old).verify(b"{}", headers)

    shown = client.get(f"/api/v1/admin/services/{world.service.code}/delivery", headers=admin)
    assert len(shown.json()["valid_secrets"]) == 2
    assert new not in shown.text and old not in shown.text
    assert shown.json()["destination"]["url"] == "https://receiver.example.nhs.uk/webhooks"


def test_a_delivered_message_cannot_be_redelivered(
    client: TestClient, session: Session, world: World, admin: dict[str, str]
) -> None:
    message = factories.make_outbox_message(session, referral=world.referral)
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id)
        .values(status="delivered", delivered_at=dt.datetime.now(dt.UTC))
    )
    response = client.post(f"/api/v1/admin/deliveries/{message.id}/redeliver", headers=admin)
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


# The commands, run in-process on a database of their own (they commit).


@pytest.fixture
def cli_world(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, OutboxMessage]]:
    migrate.upgrade(fresh_database_url)
    for name in [n for n in os.environ if n.startswith("EXHALE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("EXHALE_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("EXHALE_LOG_JSON", "false")
    engine = make_engine(fresh_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service = factories.make_service(session, code="SSS01")
            unit = factories.make_unit(session, service=service)
            pregnancy = factories.make_pregnancy(session, unit=unit)
            referral = factories.make_referral(session, pregnancy=pregnancy, service=service)
            message = factories.make_outbox_message(session, referral=referral)
            message.status = "failed"
        yield fresh_database_url, message
    finally:
        engine.dispose()


def _exhale(*args: str) -> tuple[int, str, str]:
    ran = invoke_exhale(*args, env=os.environ)  # the settings cli_world put in the environment
    return ran.returncode, ran.stdout, ran.stderr


def test_the_delivery_commands(
    cli_world: tuple[str, OutboxMessage],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, message = cli_world
    code, out, err = _exhale(
        "delivery", "destination", "set", "--service", "sss01",
        "--url", "https://receiver.example.nhs.uk/hook", "--mode", "thin",
    )  # fmt: skip
    assert code == 0, err
    first_secret = out.strip()
    assert first_secret.startswith("whsec_") and "\n" not in first_secret

    code, out, err = _exhale("delivery", "secret", "rotate", "--service", "SSS01")
    assert code == 0 and out.strip().startswith("whsec_") and out.strip() != first_secret
    assert "previous one is valid until" in err

    code, out, _err = _exhale("delivery", "destination", "show", "--service", "SSS01")
    assert "https://receiver.example.nhs.uk/hook (thin, active)" in out
    assert out.count("secret created") == 2 and "whsec_" not in out

    code, out, err = _exhale("delivery", "list", "--status", "failed")
    assert out.split()[:3] == [str(message.id), "failed", "SSS01"]
    assert "1 failed" in err

    code, out, err = _exhale("delivery", "redeliver", "--service", "SSS01", "--all-failed")
    assert code == 0 and "1 failed message(s) to SSS01" in out
    code, out, err = _exhale("delivery", "redeliver", str(message.id))
    assert code == 0 and "sent again shortly" in out
    code, _out, err = _exhale("delivery", "redeliver")
    assert code == 2 and "give a message id" in err

    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("EXHALE_DELIVERY__SEALING_KEYS", f"{new_key},{DEFAULT_SEALING_KEY}")
    code, out, err = _exhale("delivery", "secret", "reseal")
    assert code == 0 and out == "" and "Resealed 2 signing secret(s)" in err
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sealed = conn.execute(select(DeliverySecret.sealed_secret)).scalars().all()
    finally:
        engine.dispose()
    assert [Sealer([new_key]).open(s) for s in sealed].count(first_secret) == 1
    monkeypatch.setenv("EXHALE_DELIVERY__SEALING_KEYS", Fernet.generate_key().decode())
    code, _out, err = _exhale("delivery", "secret", "reseal")
    assert code == 2 and "nothing resealed" in err and "whsec_" not in err

    monkeypatch.setenv("EXHALE_ENVIRONMENT", "production")
    monkeypatch.setenv("EXHALE_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("EXHALE_DELIVERY__SEALING_KEYS", Fernet.generate_key().decode())
    code, _out, err = _exhale(
        "delivery", "destination", "set", "--service", "SSS01",
        "--url", "http://10.0.0.7/hook",
    )  # fmt: skip
    assert code == 2 and "must be https in production" in err
