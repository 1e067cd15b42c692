"""Plain factory functions for test records."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy.orm import Session

from app.clock import local_today
from app.config import DeliverySettings
from app.identity.models import ApiClient, ClientRole, User
from app.identity.passwords import hash_password
from app.identity.service import create_api_client
from app.orgs.models import Organisation, OrganisationKind
from app.pregnancies.models import Pregnancy
from referral.delivery.sealing import Sealer
from referral.models import OutboxMessage, Referral

_sequence = itertools.count(1)
SEALER = Sealer.from_settings(DeliverySettings())  # the development key, as the app's default
DEFAULT_PASSWORD = "correct horse battery staple"
_DEFAULT_HASH = hash_password(DEFAULT_PASSWORD)  # argon2 is slow on purpose: hash once per run


def make_service(session: Session, *, code: str | None = None) -> Organisation:
    number = next(_sequence)
    service = Organisation(
        kind=OrganisationKind.stop_smoking_service.value,
        code=code or f"SVC{number}",
        name=f"Stop Smoking Service {number}",
    )
    session.add(service)
    session.flush()
    return service


def make_unit(
    session: Session, *, code: str | None = None, service: Organisation | None = None
) -> Organisation:
    number = next(_sequence)
    unit = Organisation(
        kind=OrganisationKind.maternity_unit.value,
        code=code or f"UNIT{number}",
        name=f"Maternity Unit {number}",
        default_service=service,
    )
    session.add(unit)
    session.flush()
    return unit


def make_user(
    session: Session,
    *,
    role: str,
    organisation: Organisation,
    password: str = DEFAULT_PASSWORD,
    username: str | None = None,
    must_change_password: bool = False,
) -> User:
    user = User(
        username=username or f"{role}{next(_sequence)}",
        display_name=f"Test {role.title()}",
        password_hash=_DEFAULT_HASH if password == DEFAULT_PASSWORD else hash_password(password),
        role=role,
        organisation=organisation,
        must_change_password=must_change_password,
    )
    session.add(user)
    session.flush()
    return user


def make_api_client(
    session: Session, *, role: str, organisation: Organisation
) -> tuple[ApiClient, str]:
    client, secret = create_api_client(
        session,
        name=f"{role}-client-{next(_sequence)}",
        role=ClientRole(role),
        organisation=organisation,
    )
    return client, secret


def make_pregnancy(
    session: Session,
    *,
    unit: Organisation,
    nhs_number: str = "9434765919",
    estimated_due_date: dt.date | None = None,
) -> Pregnancy:
    """A pregnancy at 180 days' gestation today, unless a due date is given."""
    if estimated_due_date is None:
        estimated_due_date = local_today() + dt.timedelta(days=100)
    pregnancy = Pregnancy(
        unit=unit,
        nhs_number=nhs_number,
        given_name="Jane",
        family_name="Testpatient",
        date_of_birth=dt.date(1995, 4, 2),
        phone="07700 900123",
        postcode="LS1 4AP",
        estimated_due_date=estimated_due_date,
    )
    session.add(pregnancy)
    session.flush()
    return pregnancy


def make_referral(session: Session, *, pregnancy: Pregnancy, service: Organisation) -> Referral:
    referral = Referral(
        pregnancy_id=pregnancy.id,
        service=service,
        status="pending",
        reasons=["co_elevated"],
        policy_version="test",
    )
    session.add(referral)
    session.flush()
    return referral


def make_destination(
    session: Session,
    *,
    service: Organisation,
    url: str = "https://receiver.example.nhs.uk/webhooks",
    mode: str = "full",
) -> str:
    """An active webhook destination for the service; returns its signing secret."""
    from referral.delivery import service as delivery
    from referral.delivery.models import PayloadMode
    from referral.delivery.safety import DestinationPolicy

    now = dt.datetime.now(dt.UTC)
    _destination, secret = delivery.set_destination(
        session,
        service=service,
        url=url,
        mode=PayloadMode(mode),
        policy=DestinationPolicy(require_https=False, allow_private=True),
        now=now,
        secret_overlap=dt.timedelta(hours=24),
        sealer=SEALER,
    )
    if secret is None:
        secret = delivery.rotate_secret(
            session, service=service, now=now, overlap=dt.timedelta(0), sealer=SEALER
        ).secret
    return secret


def make_outbox_message(
    session: Session,
    *,
    referral: Referral,
    event_type: str = "referral.created",
    now: dt.datetime | None = None,
) -> OutboxMessage:
    from referral.delivery.service import enqueue_referral_event

    return enqueue_referral_event(
        session, referral=referral, event_type=event_type, now=now or dt.datetime.now(dt.UTC)
    )
