"""Recording a CO test at an appointment, and the result panel: what to say to her now.

The midwife chooses her monitor and picks its result (the page fills it in as soon as the bridge
posts it, when JavaScript runs; otherwise she reloads), or types the number, or records that the
test was declined or no monitor worked. Saving runs the rules at once, as the API does.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.clock import local_today
from app.config import Settings
from app.db import utcnow
from app.errors import ExhaleError
from app.identity.principal import Principal
from app.monitors import service as monitors
from app.orgs.models import Organisation
from app.pregnancies import service as pregnancies
from app.pregnancies.models import ContactKind, Pregnancy
from app.readings import service as readings
from app.readings.models import ReadingOutcome, SmokingStatus
from app.readings.schemas import ReadingCreate
from app.web.common import check_form_csrf, render, set_cookie
from app.web.pages import (
    DateParts,
    FormDep,
    FormErrors,
    PageRoute,
    form_text,
    read_date,
    read_whole_number,
    refused,
    role_user,
)
from referral import queue
from referral.models import Referral

router = APIRouter(include_in_schema=False, route_class=PageRoute)
# A refused attempt on a record is audited, as the API does.
PregnancyWriter = Annotated[Principal, role_user("midwife", record=pregnancies.RECORD_TYPE)]
ReadingReader = Annotated[Principal, role_user("midwife", record=readings.RECORD_TYPE)]

MONITOR_COOKIE = "exhale_monitor"
RESULTS_SHOWN = 10
SOURCE_ID = re.compile(r"^web-[A-Za-z0-9_-]{16,64}$")

HOW = (
    ("monitor", "Result from the monitor", None),
    ("typed", "Type the reading", "When the monitor is not connected to exhale"),
    ("declined", "She declined the test", None),
    ("no_monitor", "No working monitor", None),
)
NO_READING = {
    "declined": "A declined test has no reading: clear the number, or choose to type it.",
    "no_monitor": (
        "With no working monitor there is no reading: clear the number, or choose to type it."
    ),
}
SMOKING = (
    (SmokingStatus.smoker.value, "She smokes", None),
    (SmokingStatus.ex_smoker.value, "She has stopped smoking", None),
    (SmokingStatus.non_smoker.value, "She does not smoke", None),
    (SmokingStatus.unknown.value, "She did not say", None),
)
CONTACTS = (
    ("", "Work it out from the dates"),
    (ContactKind.booking.value, "Booking appointment"),
    (ContactKind.weeks_36.value, "36-week appointment"),
    (ContactKind.antenatal.value, "Another antenatal appointment"),
    (ContactKind.postnatal.value, "After the birth"),
)
SERVICE_FIELDS = {
    "co_ppm": ("co_ppm", "The reading"),
    "device_reading_id": ("monitor-results", "The monitor's result"),
    "measured_at": ("how", "The time of the test"),
    "stopped_smoking_on": ("stopped_smoking_on-day", "The date she stopped"),
    "contact": ("contact", "Appointment"),
}


@dataclass
class TestForm:
    how: str = ""
    device_reading_id: str = ""
    co_ppm: str = ""
    smoking_status: str = ""
    stopped: DateParts = field(default_factory=DateParts)
    advice_given: str = ""
    contact: str = ""
    source_id: str = field(default_factory=lambda: f"web-{secrets.token_urlsafe(18)}")


def _scoped(session: Session, principal: Principal, pregnancy_id: int) -> Pregnancy:
    """Her pregnancy, for its NHS number only: recording the test audits the read itself."""
    found = session.scalars(
        select(Pregnancy).where(
            Pregnancy.id == pregnancy_id, Pregnancy.unit_id == principal.organisation_id
        )
    ).one_or_none()
    if found is None:  # audits the refused attempt and answers 404
        return pregnancies.get_for_reader_or_raise(
            session, principal=principal, pregnancy_id=pregnancy_id
        )
    return found


def _chosen_monitor(request: Request, serials: list[str], asked: str | None) -> str | None:
    for candidate in (asked, request.cookies.get(MONITOR_COOKIE)):
        if candidate and candidate in serials:
            return candidate
    return serials[0] if len(serials) == 1 else None


def _form_page(
    request: Request,
    session: Session,
    settings: Settings,
    user: Principal,
    *,
    pregnancy_id: int,
    values: TestForm,
    device: str | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    assert user.organisation_id is not None
    pregnancy = pregnancies.get_for_reader_or_raise(
        session, principal=user, pregnancy_id=pregnancy_id
    )
    registry = monitors.list_monitors(session, unit_id=user.organisation_id)
    serials = [monitor.serial for monitor in registry]
    chosen = _chosen_monitor(request, serials, device)
    results = []
    if chosen is not None:
        results = monitors.list_for_unit(
            session,
            unit_id=user.organisation_id,
            device=chosen,
            unassigned=True,
            older_than=None,
            limit=RESULTS_SHOWN,
        )
    if not values.how and chosen is not None:
        values.how = "monitor"
    today = local_today()
    context = {
        "user": user,
        "pregnancy": pregnancy,
        "gestation_today": pregnancies.gestation_days(pregnancy, today),
        "monitors": registry,
        "device": chosen,
        "results": results,
        "values": values,
        "errors": errors or FormErrors(),
        "how_options": HOW,
        "smoking_options": SMOKING,
        "contact_options": CONTACTS,
        "max_co_ppm": settings.max_co_ppm,
    }
    response = render(request, "record_test.html", context, status_code=status_code)
    if device and device == chosen:
        set_cookie(response, request, settings, MONITOR_COOKIE, device, max_age=90 * 24 * 3600)
    return response


@router.get("/pregnancies/{id}/test")
def show_test_form(
    id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PregnancyWriter,
    device: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return _form_page(
        request, session, settings, user, pregnancy_id=id, values=TestForm(), device=device
    )


def _read_outcome(
    values: TestForm, errors: FormErrors, settings: Settings, *, device: str
) -> dict[str, object]:
    if values.how == "monitor":
        if not device:
            errors.add("how", "Choose the monitor above and then her result, or type it.")
            return {}
        if not values.device_reading_id.isdigit():
            errors.add("monitor-results", "Choose her result from the monitor, or type it.")
            return {}
        return {"device_reading_id": int(values.device_reading_id)}
    if values.how == "typed":
        ppm = read_whole_number(values.co_ppm, lowest=0, highest=settings.max_co_ppm)
        if ppm is None:
            errors.add(
                "co_ppm",
                f"Enter the reading as a whole number of ppm, from 0 to {settings.max_co_ppm}.",
            )
        return {"co_ppm": ppm, "outcome": ReadingOutcome.measured}
    if values.how in ("declined", "no_monitor"):
        if values.co_ppm:  # a number typed and then a test with no reading chosen: ask, not drop
            errors.add("co_ppm", NO_READING[values.how])
            return {}
        return {"outcome": ReadingOutcome(values.how)}
    errors.add("how", "Choose how the test was done.")
    return {}


def _read_test_form(
    form: dict[str, str], settings: Settings, nhs_number: str
) -> tuple[TestForm, FormErrors, ReadingCreate | None]:
    errors = FormErrors()
    values = TestForm(
        how=form_text(form, "how", 20),
        device_reading_id=form_text(form, "device_reading_id", 20),
        co_ppm=form_text(form, "co_ppm", 10),
        smoking_status=form_text(form, "smoking_status", 20),
        advice_given=form_text(form, "very_brief_advice_given", 3),
        contact=form_text(form, "contact", 20),
    )
    source_id = form_text(form, "source_id", 80)
    if SOURCE_ID.match(source_id):
        values.source_id = source_id
    fields = _read_outcome(values, errors, settings, device=form_text(form, "device", 64))
    if values.smoking_status not in {value for value, _label, _hint in SMOKING}:
        errors.add("smoking_status", "Choose what she says about smoking.")
    values.stopped, stopped_on = read_date(
        form,
        "stopped_smoking_on",
        errors,
        field_id="stopped_smoking_on",
        label="the date she stopped",
        required=False,
    )
    if values.contact not in {value for value, _label in CONTACTS}:
        values.contact = ""
    if errors:
        return values, errors, None
    if values.how != "monitor":
        fields["measured_at"] = utcnow()
    try:
        body = ReadingCreate(
            nhs_number=nhs_number,
            smoking_status=SmokingStatus(values.smoking_status),
            stopped_smoking_on=stopped_on
            if values.smoking_status == SmokingStatus.ex_smoker
            else None,
            very_brief_advice_given={"yes": True, "no": False}.get(values.advice_given),
            contact=ContactKind(values.contact) if values.contact else None,
            source_id=values.source_id,
            **fields,
        )
    except ValidationError as error:
        for item in error.errors():
            errors.add("how", str(item["msg"]).removeprefix("Value error, "))
        return values, errors, None
    return values, errors, body


@router.post("/pregnancies/{id}/test")
def record_test(
    id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: PregnancyWriter,
    form: FormDep,
) -> Response:
    check_form_csrf(form.get("csrf_token"), user.csrf_token)
    pregnancy = _scoped(session, user, id)
    values, errors, body = _read_test_form(form, settings, pregnancy.nhs_number)
    status_code = 422
    if body is not None:
        try:
            recorded = readings.record(
                session, principal=user, body=body, settings=settings, now=utcnow()
            )
        except ExhaleError as error:
            status_code = refused(session, error, errors, SERVICE_FIELDS, "how", kept=(404, 409))
        else:
            if recorded.reading.pregnancy_id == id:
                session.commit()  # see app.api.readings: commit in the route, then redirect
                return RedirectResponse(f"/readings/{recorded.reading.id}", status_code=303)
            session.rollback()
            errors.add(
                "how",
                "This pregnancy is not her current one at your unit: open her current "
                "pregnancy (find her by NHS number) to record the test.",
            )
    device = form_text(form, "device", 64) or None
    return _form_page(
        request,
        session,
        settings,
        user,
        pregnancy_id=id,
        values=values,
        device=device,
        errors=errors,
        status_code=status_code,
    )


# --- the result panel --------------------------------------------------------------------------


def opt_out_reason(session: Session, referral: Referral) -> str | None:
    reasons = [
        e.data.get("reason") for e in queue.events_of(session, referral) if e.kind == "opt_out"
    ]
    return str(reasons[-1]) if reasons and reasons[-1] else None


@router.get("/readings/{id}")
def show_result(id: int, request: Request, session: SessionDep, user: ReadingReader) -> Response:
    reading = readings.get_for_reader_or_raise(session, principal=user, reading_id=id)
    pregnancy = pregnancies.get_for_reader_or_raise(
        session, principal=user, pregnancy_id=reading.pregnancy_id
    )
    referral = None
    if reading.referral_id is not None:
        referral = queue.get_for_reader_or_raise(
            session, principal=user, referral_id=reading.referral_id
        )
    context = {
        "user": user,
        "reading": readings.to_read(session, reading),
        "pregnancy": pregnancy,
        "referral": referral,
        "service": session.get(Organisation, referral.service_id) if referral else None,
        "overdue": queue.is_overdue(referral, utcnow()) if referral else False,
        "opt_out_reason": opt_out_reason(session, referral) if referral else None,
    }
    return render(request, "reading.html", context)
