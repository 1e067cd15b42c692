"""Recording the birth with her smoking status at delivery (SATOD), and her smoking status after
the birth: the midwife's forms for what a maternity record system otherwise posts to the API.

Both write through the pregnancy service, as the API does: recording the birth again corrects it,
a status sent again for the same date replaces it, and the service audits each write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

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
from app.pregnancies.schemas import AtDelivery
from app.web.co_tests import SMOKING
from app.web.common import check_form_csrf, render
from app.web.pages import (
    DateParts,
    FormDep,
    FormErrors,
    PageRoute,
    form_text,
    read_date,
    refused,
    role_user,
    sentence,
)
from app.web.women import is_current

router = APIRouter(include_in_schema=False, route_class=PageRoute)
# A refused attempt on her record is audited, as the API does.
PregnancyWriter = Annotated[Principal, role_user("midwife", record=pregnancies.RECORD_TYPE)]

# The test form's words for the statuses the birth record takes (no ex-smoker at delivery).
AT_DELIVERY = tuple(option for option in SMOKING if option[0] in {s.value for s in AtDelivery})
NOT_CURRENT = (
    "This pregnancy is not her current one at your unit: open her current pregnancy (find her by "
    "NHS number) to record this."
)


@dataclass
class StatusForm:
    date: DateParts = field(default_factory=DateParts)
    smoking_status: str = ""


@dataclass(frozen=True)
class StatusPage:
    """One of the two forms: a date (the service's field name, read_date's words for it) and her
    smoking status, from ``options``."""

    template: str
    date_field: str
    date_label: str
    options: tuple[tuple[str, str, str | None], ...]
    initial: Callable[[Pregnancy], StatusForm]

    @property
    def date_id(self) -> str:
        return f"{self.date_field}-day"


BIRTH = StatusPage(
    "birth.html",
    "born_on",
    "the date of the birth",
    AT_DELIVERY,
    lambda pregnancy: StatusForm(
        DateParts.of(pregnancy.born_on), pregnancy.smoking_status_at_delivery or ""
    ),
)
POSTNATAL = StatusPage(
    "postnatal_status.html",
    "recorded_on",
    "the date",
    SMOKING,
    lambda _pregnancy: StatusForm(DateParts.of(local_today())),
)
Recorder = Callable[[Session, Principal, Pregnancy, dt.date, str, dt.date], object]


def _page(
    request: Request,
    session: Session,
    settings: Settings,
    user: Principal,
    page: StatusPage,
    *,
    pregnancy_id: int,
    values: StatusForm | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    pregnancy = pregnancies.get_for_reader_or_raise(
        session, principal=user, pregnancy_id=pregnancy_id
    )
    context = {
        "user": user,
        "pregnancy": pregnancy,
        "is_current": is_current(session, pregnancy, local_today(), settings),
        "values": values or page.initial(pregnancy),
        "errors": errors or FormErrors(),
        "smoking_options": page.options,
    }
    return render(request, page.template, context, status_code=status_code)


def _read(form: dict[str, str], page: StatusPage) -> tuple[StatusForm, FormErrors, dt.date | None]:
    errors = FormErrors()
    parts, on = read_date(
        form,
        page.date_field,
        errors,
        field_id=page.date_field,
        label=page.date_label,
        required=True,
    )
    values = StatusForm(parts, form_text(form, "smoking_status", 20))
    if values.smoking_status not in {value for value, _label, _hint in page.options}:
        errors.add("smoking_status", "Choose what she says about smoking.")
    return values, errors, on


def _save(
    request: Request,
    session: Session,
    settings: Settings,
    user: Principal,
    form: dict[str, str],
    page: StatusPage,
    *,
    pregnancy_id: int,
    record: Recorder,
) -> Response:
    """Record the form's date and status on her current pregnancy, then back to her record."""
    check_form_csrf(form.get("csrf_token"), user.csrf_token)
    values, errors, on = _read(form, page)
    status_code = 422
    if on is not None and not errors:
        pregnancy = pregnancies.get_for_reader_or_raise(
            session, principal=user, pregnancy_id=pregnancy_id, action=audit.Action.update
        )
        today = local_today()
        try:
            if not is_current(session, pregnancy, today, settings):
                raise InvalidInput(NOT_CURRENT)
            record(session, user, pregnancy, on, values.smoking_status, today)
        except ExhaleError as error:
            fields = {page.date_field: (page.date_id, sentence(page.date_label))}
            status_code = refused(session, error, errors, fields, page.date_id)
        else:
            session.commit()  # see app.api.readings: commit in the route, then redirect
            return RedirectResponse(f"/pregnancies/{pregnancy_id}", status_code=303)
    return _page(
        request,
        session,
        settings,
        user,
        page,
        pregnancy_id=pregnancy_id,
        values=values,
        errors=errors,
        status_code=status_code,
    )


def _record_birth(
    session: Session,
    user: Principal,
    pregnancy: Pregnancy,
    on: dt.date,
    status: str,
    today: dt.date,
) -> None:
    pregnancies.record_birth(
        session,
        principal=user,
        pregnancy=pregnancy,
        born_on=on,
        smoking_status_at_delivery=status,
        today=today,
    )


def _record_postnatal(
    session: Session,
    user: Principal,
    pregnancy: Pregnancy,
    on: dt.date,
    status: str,
    today: dt.date,
) -> None:
    pregnancies.record_postnatal_status(
        session,
        principal=user,
        pregnancy=pregnancy,
        recorded_on=on,
        smoking_status=status,
        today=today,
    )


@router.get("/pregnancies/{id}/birth")
def show_birth_form(
    id: int, request: Request, session: SessionDep, settings: SettingsDep, user: PregnancyWriter
) -> Response:
    return _page(request, session, settings, user, BIRTH, pregnancy_id=id)


@router.post("/pregnancies/{id}/birth")
def record_birth(
    id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PregnancyWriter,
    form: FormDep,
) -> Response:
    return _save(
        request, session, settings, user, form, BIRTH, pregnancy_id=id, record=_record_birth
    )


@router.get("/pregnancies/{id}/postnatal-status")
def show_postnatal_form(
    id: int, request: Request, session: SessionDep, settings: SettingsDep, user: PregnancyWriter
) -> Response:
    return _page(request, session, settings, user, POSTNATAL, pregnancy_id=id)


@router.post("/pregnancies/{id}/postnatal-status")
def record_postnatal_status(
    id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PregnancyWriter,
    form: FormDep,
) -> Response:
    return _save(
        request, session, settings, user, form, POSTNATAL, pregnancy_id=id, record=_record_postnatal
    )
