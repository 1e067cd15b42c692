"""First start: one demo maternity unit, one stop-smoking service and an admin account."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.identity.models import User, UserRole
from app.identity.passwords import generate_password, hash_password
from app.orgs.models import Organisation, OrganisationKind

DEMO_UNIT_CODE = "DEMO1"
DEMO_SERVICE_CODE = "DEMOSS"
ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class Bootstrapped:
    unit_code: str
    service_code: str
    username: str
    password: str


def bootstrap_if_empty(session: Session) -> Bootstrapped | None:
    """On a database with no organisations, create the demo set-up; otherwise do nothing."""
    if session.scalar(select(func.count()).select_from(Organisation)):
        return None
    service = Organisation(
        kind=OrganisationKind.stop_smoking_service.value,
        code=DEMO_SERVICE_CODE,
        name="Demo Stop Smoking Service",
    )
    unit = Organisation(
        kind=OrganisationKind.maternity_unit.value,
        code=DEMO_UNIT_CODE,
        name="Demo Maternity Unit",
        default_service=service,
    )
    password = generate_password()
    admin = User(
        username=ADMIN_USERNAME,
        display_name="Administrator",
        password_hash=hash_password(password),
        role=UserRole.admin.value,
        organisation=unit,
        must_change_password=True,
    )
    session.add_all([service, unit, admin])
    session.flush()
    return Bootstrapped(DEMO_UNIT_CODE, DEMO_SERVICE_CODE, ADMIN_USERNAME, password)
