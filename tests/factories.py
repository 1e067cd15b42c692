"""Plain factory functions for test records."""

from __future__ import annotations

import itertools

from sqlalchemy.orm import Session

from app.orgs.models import Organisation, OrganisationKind

_sequence = itertools.count(1)


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
