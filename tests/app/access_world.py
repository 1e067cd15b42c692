"""A small world of two units and two services with every role, for access tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.auth import SESSION_COOKIE
from app.audit.models import AuditEvent
from app.db import utcnow
from app.identity import service as identity
from app.identity.models import User, WebSession
from app.orgs.models import Organisation
from app.pregnancies.models import Pregnancy
from referral.models import Referral
from tests import factories

USER_ROLES = ("midwife", "advisor", "lead", "admin")
CLIENT_ROLES = ("epr", "bridge", "service")
ALL_ROLES = USER_ROLES + CLIENT_ROLES
SHARED_NHS_NUMBER = "9434765919"


@dataclass
class Side:
    unit: Organisation
    service: Organisation
    pregnancy: Pregnancy
    referral: Referral
    users: dict[str, User] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    client_names: dict[str, str] = field(default_factory=dict)


def build_side(session: Session) -> Side:
    service = factories.make_service(session)
    unit = factories.make_unit(session, service=service)
    pregnancy = factories.make_pregnancy(session, unit=unit, nhs_number=SHARED_NHS_NUMBER)
    side = Side(
        unit=unit,
        service=service,
        pregnancy=pregnancy,
        referral=factories.make_referral(session, pregnancy=pregnancy, service=service),
    )
    for role in USER_ROLES:
        organisation = service if role == "advisor" else unit
        side.users[role] = factories.make_user(session, role=role, organisation=organisation)
    for role in CLIENT_ROLES:
        organisation = service if role == "service" else unit
        api_client, side.keys[role] = factories.make_api_client(
            session, role=role, organisation=organisation
        )
        side.client_names[role] = api_client.name
    return side


def sign_in(client: TestClient, session: Session, user: User) -> str:
    """Give the test client a web session for this user; returns the session's CSRF token."""
    policy = identity.SessionPolicy(idle=dt.timedelta(hours=1), maximum=dt.timedelta(hours=12))
    token = identity.start_web_session(session, user=user, now=utcnow(), policy=policy)
    client.cookies.set(SESSION_COOKIE, token)
    row = session.get(WebSession, identity.digest(token))
    assert row is not None
    return row.csrf_token


def headers_for(client: TestClient, session: Session, side: Side, role: str) -> dict[str, str]:
    """Credentials for a role on this side: a bearer key for machines, a session for people."""
    client.cookies.clear()
    if role in CLIENT_ROLES:
        return {"Authorization": f"Bearer {side.keys[role]}"}
    sign_in(client, session, side.users[role])
    return {}


def post_referral_event(
    client: TestClient, headers: dict[str, str], referral_id: int, **body: Any
) -> Any:
    """Record an event on a referral through the API, sending its current version as If-Match."""
    current = client.get(f"/api/v1/referrals/{referral_id}", headers=headers)
    assert current.status_code == 200, current.text
    return client.post(
        f"/api/v1/referrals/{referral_id}/events",
        json=body,
        headers={**headers, "If-Match": current.headers["etag"]},
    )


def denied_on_pregnancy(session: Session, pregnancy_id: int) -> list[AuditEvent]:
    """The refused attempts the audit trail holds on one pregnancy's record, oldest first."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.outcome == "denied", AuditEvent.record_id == str(pregnancy_id))
            .order_by(AuditEvent.id)
        )
    )
