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


def _service_or_raise(session: Session, code: str, field: str) -> Organisation:
    service = get_by_code_or_raise(session, code)
    if service.kind != OrganisationKind.stop_smoking_service:
        raise InvalidInput(
            f"Check {field}.",
            fields=[FieldError(field, "must be a stop-smoking service's code")],
        )
    return service


def _unit_or_raise(session: Session, code: str) -> Organisation:
    unit = get_by_code_or_raise(session, code)
    if unit.kind != OrganisationKind.maternity_unit:
        raise InvalidInput("Check unit.", fields=[FieldError("unit", "must be a unit's code")])
    return unit


def set_default_service(session: Session, *, unit_code: str, service_code: str) -> Organisation:
    unit = _unit_or_raise(session, unit_code)
    unit.default_service = _service_or_raise(session, service_code, "service")
    session.flush()
    return unit


def route_district(session: Session, *, unit_code: str, district: str, service_code: str) -> None:
    """Referrals from this postcode district (``LS1``) at this unit go to this service."""
    from referral.models import ServiceArea

    district = district.strip().upper()
    if not re.fullmatch(r"[A-Z]{1,2}[0-9][0-9A-Z]?", district):
        raise InvalidInput(
            "Check district.", fields=[FieldError("district", "use a postcode district, e.g. LS1")]
        )
    unit = _unit_or_raise(session, unit_code)
    service = _service_or_raise(session, service_code, "service")
    area = session.scalars(
        select(ServiceArea).where(
            ServiceArea.unit_id == unit.id, ServiceArea.postcode_district == district
        )
    ).one_or_none()
    if area is None:
        area = ServiceArea(unit_id=unit.id, postcode_district=district)
        session.add(area)
    area.service_id = service.id
    session.flush()
