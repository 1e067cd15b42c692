"""Maternity units and stop-smoking services."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, FieldError, InvalidInput, NotFound
from app.orgs.models import Organisation, OrganisationKind

_CODE = re.compile(r"^[A-Z0-9]{3,16}$")


def get_by_code_or_raise(session: Session, code: str) -> Organisation:
    organisation = session.scalars(
        select(Organisation).where(Organisation.code == code.strip().upper())
    ).one_or_none()
    if organisation is None:
        raise NotFound(
            f"No organisation has the code {code!r}; `exhale orgs list` shows the codes.",
            code="organisation_not_found",
        )
    return organisation


def list_(session: Session) -> list[Organisation]:
    return list(
        session.scalars(select(Organisation).order_by(Organisation.kind, Organisation.code))
    )


def create(
    session: Session,
    *,
    code: str,
    name: str,
    kind: OrganisationKind,
    default_service_code: str | None = None,
) -> Organisation:
    code = code.strip().upper()
    if not _CODE.fullmatch(code):
        raise InvalidInput(
            "Check code.",
            fields=[FieldError("code", "use the ODS code: 3 to 16 letters and digits")],
        )
    if not name.strip():
        raise InvalidInput("Check name.", fields=[FieldError("name", "must not be empty")])
    if session.scalars(select(Organisation.id).where(Organisation.code == code)).first():
        raise Conflict(f"An organisation with the code {code} already exists.")
    default_service = None
    if default_service_code:
        if kind is not OrganisationKind.maternity_unit:
            raise InvalidInput(
                "Check default_service.",
                fields=[FieldError("default_service", "only a maternity unit has one")],
            )
        default_service = get_by_code_or_raise(session, default_service_code)
        if default_service.kind != OrganisationKind.stop_smoking_service:
            raise InvalidInput(
                "Check default_service.",
                fields=[FieldError("default_service", "must be a stop-smoking service's code")],
            )
    organisation = Organisation(
        code=code, name=name.strip(), kind=kind.value, default_service=default_service
    )
    session.add(organisation)
    session.flush()
    return organisation
