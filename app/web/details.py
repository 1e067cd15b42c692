"""Changing her details: the due date (the dating scan often revises it), her names, date of
birth, phone number and postcode, on the register form's fields filled in from her record.

Only the fields that differ from her record are sent to the pregnancy service, which audits which
fields changed, as a PATCH to the API does. A field left blank removes what was stored; the due
date cannot be removed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.audit import service as audit
from app.clock import local_today
from app.config import Settings
from app.errors import ExhaleError, InvalidInput
from app.identity.principal import Principal
from app.pregnancies import service as pregnancies
from app.pregnancies.models import Pregnancy
from app.readings.schemas import PregnancyDetails
from app.web.common import check_form_csrf, render
from app.web.pages import DateParts, FormDep, FormErrors, PageRoute, refused, role_user
from app.web.women import DETAIL_FIELDS, DETAIL_FIELDS_SHOWN, is_current, read_details

router = APIRouter(include_in_schema=False, route_class=PageRoute)
# A refused attempt on her record is audited, as the API does.
PregnancyWriter = Annotated[Principal, role_user("midwife", record=pregnancies.RECORD_TYPE)]

NOT_CURRENT = (
    "This pregnancy is not her current one at your unit: open her current pregnancy (find her by "
    "NHS number) to change her details."
)


def _stored(pregnancy: Pregnancy) -> dict[str, Any]:
    """Her record as the form's values."""
    values: dict[str, Any] = {name: getattr(pregnancy, name) or "" for name in DETAIL_FIELDS}
    values["edd"] = DateParts.of(pregnancy.estimated_due_date)
    values["dob"] = DateParts.of(pregnancy.date_of_birth)
    return values


def _changes(pregnancy: Pregnancy, details: PregnancyDetails) -> dict[str, object]:
    """The fields whose new value differs from her record; None removes a field."""
    new = details.model_dump()
    return {
        name: value
        for name in pregnancies.DETAIL_FIELDS
        if (value := new[name]) != getattr(pregnancy, name)
    }


def _page(
    request: Request,
    session: Session,
    settings: Settings,
    user: Principal,
    pregnancy: Pregnancy,
    *,
    values: dict[str, Any] | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "user": user,
        "pregnancy": pregnancy,
        "is_current": is_current(session, pregnancy, local_today(), settings),
        "values": values or _stored(pregnancy),
        "errors": errors or FormErrors(),
    }
    return render(request, "details.html", context, status_code=status_code)


@router.get("/pregnancies/{id}/details")
def show_details_form(
    id: int, request: Request, session: SessionDep, settings: SettingsDep, user: PregnancyWriter
) -> Response:
    pregnancy = pregnancies.get_for_reader_or_raise(session, principal=user, pregnancy_id=id)
    return _page(request, session, settings, user, pregnancy)


@router.post("/pregnancies/{id}/details")
def change_details(
    id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PregnancyWriter,
    form: FormDep,
) -> Response:
    """Send what changed to the pregnancy service, then back to her record."""
    check_form_csrf(form.get("csrf_token"), user.csrf_token)
    pregnancy = pregnancies.get_for_reader_or_raise(
        session, principal=user, pregnancy_id=id, action=audit.Action.update
    )
    today = local_today()
    errors = FormErrors()
    values, details = read_details(form, errors, today, due_before=pregnancy.estimated_due_date)
    status_code = 422
    if details is not None:
        try:
            if not is_current(session, pregnancy, today, settings):
                raise InvalidInput(NOT_CURRENT)
            changes = _changes(pregnancy, details)
            pregnancies.update(session, principal=user, pregnancy=pregnancy, changes=changes)
        except ExhaleError as error:
            status_code = refused(
                session, error, errors, DETAIL_FIELDS_SHOWN, "estimated_due_date-day"
            )
            pregnancy = pregnancies.get_for_reader_or_raise(
                session, principal=user, pregnancy_id=id
            )
        else:
            session.commit()  # see app.api.readings: commit in the route, then redirect
            return RedirectResponse(f"/pregnancies/{id}", status_code=303)
    return _page(
        request,
        session,
        settings,
        user,
        pregnancy,
        values=values,
        errors=errors,
        status_code=status_code,
    )
