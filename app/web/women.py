"""The midwife's pages: her worklist, finding a woman, registering a pregnancy, and her record."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.api.pregnancies import detail
from app.clock import local_date, local_today
from app.config import Settings
from app.db import utcnow
from app.identity.principal import Principal
from app.monitors import service as monitors
from app.pregnancies import service as pregnancies
from app.pregnancies.models import Pregnancy
from app.pregnancies.nhs_number import InvalidNhsNumberError, normalise_nhs_number
from app.readings.schemas import PregnancyDetails
from app.web import worklist
from app.web.common import check_form_csrf, render
from app.web.pages import (
    DateParts,
    FormDep,
    FormErrors,
    MidwifeUser,
    PageRoute,
    form_text,
    read_date,
    role_user,
)

router = APIRouter(include_in_schema=False, route_class=PageRoute)
# A refused attempt on her record is audited, as the API does.
PregnancyReader = Annotated[Principal, role_user("midwife", record=pregnancies.RECORD_TYPE)]


@router.get("/worklist")
def show_worklist(
    request: Request, session: SessionDep, settings: SettingsDep, user: MidwifeUser
) -> Response:
    assert user.organisation_id is not None
    now = utcnow()
    today = local_date(now)
    unrecorded_before = now - dt.timedelta(minutes=settings.devices.unrecorded_after_minutes)
    context = {
        "user": user,
        "today": today,
        "week": worklist.week_of(today),
        "tests": worklist.tests_due(session, principal=user, today=today),
        "results": monitors.list_for_unit(
            session,
            unit_id=user.organisation_id,
            device=None,
            unassigned=True,
            older_than=None,
            limit=50,
        ),
        "unrecorded_before": unrecorded_before,
        "handed_back": worklist.handed_back(session, principal=user, now=now),
    }
    return render(request, "worklist.html", context)


# --- finding a woman ---------------------------------------------------------------------------


def _find_page(
    request: Request,
    user: Principal,
    *,
    nhs_number: str = "",
    found: list[Pregnancy] | None = None,
    errors: FormErrors | None = None,
    today: dt.date | None = None,
) -> Response:
    errors = errors or FormErrors()
    context = {
        "user": user,
        "nhs_number": nhs_number,
        "found": found,
        "errors": errors,
        "today": today or local_today(),
    }
    return render(request, "find.html", context, status_code=422 if errors else 200)


@router.get("/pregnancies")
def show_find(request: Request, user: MidwifeUser) -> Response:
    return _find_page(request, user)


def _parse_nhs_number(
    value: str, settings: Settings, errors: FormErrors, field_id: str = "nhs_number"
) -> str | None:
    if not value.strip():
        errors.add(field_id, "Enter her NHS number.")
        return None
    try:
        return normalise_nhs_number(value, allow_synthetic=settings.synthetic_nhs_numbers_allowed)
    except InvalidNhsNumberError as error:
        errors.add(field_id, f"NHS number {error}.")
        return None


@router.post("/pregnancies")
def find(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: MidwifeUser,
    form: FormDep,
) -> Response:
    """A search by NHS number is posted, so that the number stays out of addresses and history."""
    check_form_csrf(form.get("csrf_token"), user.csrf_token)
    typed = form_text(form, "nhs_number", 20)
    errors = FormErrors()
    number = _parse_nhs_number(typed, settings, errors)
    if number is None:
        return _find_page(request, user, nhs_number=typed, errors=errors)
    found = pregnancies.search_by_nhs_number(session, principal=user, nhs_number=number)
    return _find_page(request, user, nhs_number=number, found=found)


# --- registering a pregnancy -----------------------------------------------------------------

DETAIL_FIELDS = ("given_name", "family_name", "phone", "postcode")
DETAIL_FIELDS_SHOWN = {  # the service's field: the form's element id and its label
    "estimated_due_date": ("estimated_due_date-day", "Estimated due date"),
    "date_of_birth": ("date_of_birth-day", "Date of birth"),
    "given_name": ("given_name", "First name"),
    "family_name": ("family_name", "Last name"),
    "phone": ("phone", "Phone number"),
    "postcode": ("postcode", "Postcode"),
}


def _register_page(
    request: Request,
    user: Principal,
    values: dict[str, Any],
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    errors = errors or FormErrors()
    context = {"user": user, "values": values, "errors": errors}
    return render(request, "register.html", context, status_code=422 if errors else status_code)


@router.get("/pregnancies/new")
def show_register(request: Request, user: MidwifeUser) -> Response:
    values = {"edd": DateParts(), "dob": DateParts()}
    return _register_page(request, user, values)


def _in_reach(due: dt.date, today: dt.date) -> bool:
    """A due date a pregnancy in the unit's care today can have: from 4 weeks past to 40 ahead."""
    return (
        today - dt.timedelta(days=pregnancies.ENDS_AFTER_DUE_DAYS)
        <= due
        <= today + dt.timedelta(days=pregnancies.FULL_TERM_DAYS)
    )


def read_details(
    form: dict[str, str], errors: FormErrors, today: dt.date, *, due_before: dt.date | None = None
) -> tuple[dict[str, Any], PregnancyDetails | None]:
    """The register form's fields (due date, names, date of birth, phone, postcode): what was
    typed, for the form to come back with, and the details when every field is right.

    A due date is checked against today only when it is new (not ``due_before``): after the
    birth, the due date she already has may be weeks past.
    """
    values: dict[str, Any] = {name: form_text(form, name, 100) for name in DETAIL_FIELDS}
    values["edd"], due = read_date(
        form,
        "estimated_due_date",
        errors,
        field_id="estimated_due_date",
        label="her estimated due date",
        required=True,
    )
    values["dob"], born = read_date(
        form,
        "date_of_birth",
        errors,
        field_id="date_of_birth",
        label="her date of birth",
        required=False,
    )
    if due is not None and due != due_before and not _in_reach(due, today):
        errors.add(
            "estimated_due_date-day",
            "Her estimated due date must be within the next 40 weeks (or the last 4 weeks).",
        )
    if born is not None and born >= today:
        errors.add("date_of_birth-day", "Her date of birth must be in the past.")
    if errors or due is None:
        return values, None
    try:
        details = PregnancyDetails(
            estimated_due_date=due,
            date_of_birth=born,
            **{name: values[name] or None for name in DETAIL_FIELDS},
        )
    except ValidationError as error:
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else ""
            field_id, label = DETAIL_FIELDS_SHOWN.get(name, ("given_name", "First name"))
            message = str(item["msg"]).removeprefix("Value error, ")
            errors.add(field_id, f"{label}: {message}.")
        return values, None
    return values, details


@router.post("/pregnancies/new")
def register(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: MidwifeUser,
    form: FormDep,
) -> Response:
    check_form_csrf(form.get("csrf_token"), user.csrf_token)
    assert user.organisation_id is not None
    today = local_today()
    typed = form_text(form, "nhs_number", 20)
    if form.get("step") == "start":  # from "not found": her number filled in, nothing checked
        values = {"nhs_number": typed, "edd": DateParts(), "dob": DateParts()}
        return _register_page(request, user, values)
    errors = FormErrors()
    number = _parse_nhs_number(typed, settings, errors)
    values, details = read_details(form, errors, today)
    values["nhs_number"] = typed
    if number is not None and details is not None:
        current = _current(session, user.organisation_id, number, today, settings)
        if current is not None:
            pregnancies.get_for_reader_or_raise(session, principal=user, pregnancy_id=current.id)
            errors.add(
                "nhs_number",
                "She already has a pregnancy at your unit, due "
                f"{current.estimated_due_date:%-d %B %Y}: find her by NHS number to open it.",
            )
    if errors or number is None or details is None:
        return _register_page(request, user, values, errors)
    pregnancy = pregnancies.create(
        session,
        principal=user,
        unit_id=user.organisation_id,
        nhs_number=number,
        details=details.model_dump(exclude_none=True),
    )
    session.commit()
    return RedirectResponse(f"/pregnancies/{pregnancy.id}", status_code=303)


def _current(
    session: Session, unit_id: int, nhs_number: str, today: dt.date, settings: Settings
) -> Pregnancy | None:
    return pregnancies.find_current(
        session,
        unit_id=unit_id,
        nhs_number=nhs_number,
        on=today,
        postnatal_days=settings.postnatal_days,
    )


def is_current(session: Session, pregnancy: Pregnancy, today: dt.date, settings: Settings) -> bool:
    """Whether this is the pregnancy her unit cares for today: pages record only on that one."""
    current = _current(session, pregnancy.unit_id, pregnancy.nhs_number, today, settings)
    return current is not None and current.id == pregnancy.id


# --- her record ------------------------------------------------------------------------------


@router.get("/pregnancies/{id}")
def show_pregnancy(
    id: int, request: Request, session: SessionDep, settings: SettingsDep, user: PregnancyReader
) -> Response:
    pregnancy = pregnancies.get_for_reader_or_raise(session, principal=user, pregnancy_id=id)
    today = local_today()
    context = {
        "user": user,
        "pregnancy": detail(session, pregnancy),
        "is_current": is_current(session, pregnancy, today, settings),
        "gestation_today": pregnancies.gestation_days(pregnancy, today),
    }
    return render(request, "pregnancy.html", context)
