"""The advisor's pages: the referral queue, and a referral with her details, its timeline and the
forms for what happens next. A midwife opens the same referral page to record an opt-out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.config import Settings
from app.db import utcnow
from app.errors import ExhaleError, InvalidInput
from app.identity.principal import Principal
from app.orgs.models import Organisation
from app.pregnancies.models import Pregnancy
from app.readings.models import Reading
from app.web.common import check_form_csrf, render, safe_next
from app.web.pages import (
    AdvisorUser,
    DateParts,
    FormDep,
    FormErrors,
    PageForbiddenError,
    PageRoute,
    form_text,
    read_date,
    read_whole_number,
    refused,
    role_user,
    sentence,
    words,
)
from referral import lifecycle, queue, service
from referral.lifecycle import CLOSED_STATUSES, EventKind, OutcomeResult, OutcomeStage
from referral.models import Referral
from referral.schemas import Treatment

router = APIRouter(include_in_schema=False, route_class=PageRoute)

PAGE_SIZE = 25
OVERDUE_SHOWN = 100
OPEN_STATUSES = tuple(s.value for s in lifecycle.ReferralStatus if s not in CLOSED_STATUSES)
ReferralReader = Annotated[Principal, role_user("advisor", "midwife", record=queue.RECORD_TYPE)]

TREATMENTS = tuple((value, sentence(words(value))) for value in get_args(Treatment))
RESULTS = (
    (OutcomeResult.co_confirmed_quit.value, "Quit, confirmed by CO", "CO below the quit level"),
    (OutcomeResult.self_reported_quit.value, "Quit, self-reported", "No CO reading taken"),
    (OutcomeResult.smoking.value, "Smoking", None),
    (OutcomeResult.lost_to_follow_up.value, "Lost to follow-up", None),
)
STAGES = {
    OutcomeStage.day_28: "28 days after the quit date",
    OutcomeStage.week_12: "12 weeks",
    OutcomeStage.end_of_pregnancy: "End of pregnancy",
    OutcomeStage.after_birth: "After the birth",
}
NEXT_STEP = {
    "pending": EventKind.contact_attempt,
    "contacted": EventKind.assessment,
    "engaged": EventKind.quit_date_set,
    "quit_date_set": EventKind.outcome_check,
    "outcome_28_day": EventKind.outcome_check,
    "outcome_12_week": EventKind.outcome_check,
    "outcome_end_of_pregnancy": EventKind.outcome_check,
}
FIRST_FIELD = {
    EventKind.contact_attempt: "reached",
    EventKind.assessment: "note",
    EventKind.treatment_issued: "treatment",
    EventKind.quit_date_set: "quit_date-day",
    EventKind.outcome_check: "stage",
    EventKind.opt_out: "reason",
    EventKind.not_engaged: "note",
    EventKind.close: "note",
}
SERVICE_FIELDS = {
    "reached": ("reached", "Whether you spoke to her"),
    "treatment": ("treatment", "The treatment"),
    "quit_date": ("quit_date-day", "The quit date"),
    "stage": ("stage", "The follow-up point"),
    "result": ("result", "The result"),
    "co_ppm": ("co_ppm", "The CO reading"),
    "reason": ("reason", "Her reason"),
}


# --- the queue ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    referral: Referral
    pregnancy: Pregnancy
    overdue: bool


def _rows(session: Session, referrals: list[Referral], now: dt.datetime) -> list[QueueRow]:
    rows = []
    for referral in referrals:
        pregnancy = session.get(Pregnancy, referral.pregnancy_id)
        assert pregnancy is not None
        rows.append(QueueRow(referral, pregnancy, queue.is_overdue(referral, now)))
    return rows


@router.get("/queue")
def show_queue(
    request: Request,
    session: SessionDep,
    user: AdvisorUser,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    show: Annotated[str, Query(max_length=8)] = "open",
) -> Response:
    """Overdue first contacts at the top, then the rest, first contact due soonest first."""
    now = utcnow()
    statuses = () if show == "all" else OPEN_STATUSES
    overdue, overdue_total = queue.list_queue(
        session,
        principal=user,
        where=queue.QueueFilter(overdue=True),
        now=now,
        page=1,
        page_size=OVERDUE_SHOWN,
    )
    rest, total = queue.list_queue(
        session,
        principal=user,
        where=queue.QueueFilter(statuses=statuses, overdue=False),
        now=now,
        page=page,
        page_size=PAGE_SIZE,
    )
    context = {
        "user": user,
        "overdue": _rows(session, overdue, now),
        "overdue_total": overdue_total,
        "rows": _rows(session, rest, now),
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "show": "all" if show == "all" else "open",
    }
    return render(request, "queue.html", context)


# --- one referral ------------------------------------------------------------------------------


def _allowed(referral: Referral, user: Principal) -> list[str]:
    kinds = [k.value for k in lifecycle.allowed_events(service.state_of(referral))]
    kinds = [k for k in kinds if k != EventKind.reason_added]
    return [k for k in kinds if k == EventKind.opt_out] if user.role == "midwife" else kinds


def _later_stages(referral: Referral) -> list[tuple[str, str]]:
    stages = list(OutcomeStage)
    if referral.last_outcome_stage:
        stages = stages[stages.index(OutcomeStage(referral.last_outcome_stage)) + 1 :]
    return [(stage.value, STAGES[stage]) for stage in stages]


def _referral_page(
    request: Request,
    session: Session,
    settings: Settings,
    user: Principal,
    *,
    referral_id: int,
    errors: FormErrors | None = None,
    open_kind: str | None = None,
    values: dict[str, Any] | None = None,
    return_to: str = "",
    status_code: int = 200,
) -> Response:
    referral = queue.get_for_reader_or_raise(session, principal=user, referral_id=referral_id)
    pregnancy = session.get(Pregnancy, referral.pregnancy_id)
    assert pregnancy is not None
    latest = session.scalars(
        select(Reading)
        .where(Reading.pregnancy_id == pregnancy.id)
        .order_by(Reading.measured_at.desc())
        .limit(1)
    ).first()
    allowed = _allowed(referral, user)
    next_kind = NEXT_STEP.get(referral.status)
    context = {
        "user": user,
        "referral": referral,
        "woman": pregnancy,
        "unit": session.get(Organisation, pregnancy.unit_id),
        "service": session.get(Organisation, referral.service_id),
        "latest": latest,
        "events": queue.events_of(session, referral),
        "overdue": queue.is_overdue(referral, utcnow()),
        "allowed": allowed,
        "open_kind": open_kind or (next_kind.value if next_kind and next_kind in allowed else ""),
        "values": values or {},
        "errors": errors or FormErrors(),
        "treatments": TREATMENTS,
        "results": RESULTS,
        "stages": _later_stages(referral),
        "quit_below_ppm": settings.referral.co_confirmed_quit_below_ppm,
        "return_to": return_to,
        "blank_date": DateParts(),
    }
    return render(request, "referral.html", context, status_code=status_code)


@router.get("/referrals/{id}")
def show_referral(
    id: int, request: Request, session: SessionDep, settings: SettingsDep, user: ReferralReader
) -> Response:
    return _referral_page(request, session, settings, user, referral_id=id)


def _read_event(
    kind: str, form: dict[str, str], errors: FormErrors, values: dict[str, Any]
) -> lifecycle.Event | None:
    p = f"{kind}-"
    if kind == EventKind.contact_attempt:
        values["reached"] = form_text(form, "reached", 3)
        if values["reached"] not in ("yes", "no"):
            errors.add(p + "reached", "Choose whether you spoke to her.")
            return None
        return lifecycle.ContactAttempt(reached=values["reached"] == "yes")
    if kind == EventKind.assessment:
        return lifecycle.Assessment()
    if kind == EventKind.treatment_issued:
        values["treatment"] = form_text(form, "treatment", 40)
        if values["treatment"] not in dict(TREATMENTS):
            errors.add(p + "treatment", "Choose the treatment.")
            return None
        return lifecycle.TreatmentIssued(treatment=values["treatment"])
    if kind == EventKind.quit_date_set:
        values["quit_date"], quit_date = read_date(
            form,
            "quit_date",
            errors,
            field_id=p + "quit_date",
            label="the quit date",
            required=True,
        )
        return lifecycle.QuitDateSet(quit_date=quit_date) if quit_date else None
    if kind == EventKind.outcome_check:
        return _read_outcome(form, errors, values, p)
    if kind == EventKind.opt_out:
        values["reason"] = form_text(form, "reason", 500)
        if not values["reason"]:
            errors.add(p + "reason", "Enter her reason, or 'declined to say'.")
            return None
        return lifecycle.OptOut(reason=values["reason"])
    if kind == EventKind.not_engaged:
        return lifecycle.NotEngaged()
    if kind == EventKind.close:
        return lifecycle.Close()
    raise InvalidInput(f"{kind or 'Nothing'} is not something that can be recorded on a referral.")


def _read_outcome(
    form: dict[str, str], errors: FormErrors, values: dict[str, Any], p: str
) -> lifecycle.Event | None:
    values["stage"] = form_text(form, "stage", 20)
    values["result"] = form_text(form, "result", 20)
    values["co_ppm"] = form_text(form, "co_ppm", 10)
    if values["stage"] not in {stage.value for stage in OutcomeStage}:
        errors.add(p + "stage", "Choose the follow-up point.")
    if values["result"] not in {result.value for result in OutcomeResult}:
        errors.add(p + "result", "Choose the result.")
    co_ppm = None
    if values["co_ppm"]:
        co_ppm = read_whole_number(values["co_ppm"], lowest=0, highest=lifecycle.CO_PPM_MAX)
        if co_ppm is None:
            errors.add(
                p + "co_ppm",
                f"Enter the CO reading as a whole number of ppm, from 0 to {lifecycle.CO_PPM_MAX}.",
            )
    if errors:
        return None
    return lifecycle.OutcomeCheck(
        stage=OutcomeStage(values["stage"]), result=OutcomeResult(values["result"]), co_ppm=co_ppm
    )


@router.post("/referrals/{id}")
def record_event(
    id: int,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ReferralReader,
    form: FormDep,
) -> Response:
    """One event from the referral page (or the midwife's opt-out from the result panel)."""
    check_form_csrf(form.get("csrf_token"), user.csrf_token)
    kind = form_text(form, "kind", 40)
    if user.role == "midwife" and kind != EventKind.opt_out:
        raise PageForbiddenError(
            "A midwife records an opt-out here; the stop-smoking service records the rest."
        )
    return_to = form_text(form, "return_to", 200)
    referral = queue.get_for_reader_or_raise(
        session, principal=user, referral_id=id, action="update"
    )
    errors = FormErrors()
    values: dict[str, Any] = {"note": form_text(form, "note", 2000)}
    event = None
    try:
        event = _read_event(kind, form, errors, values)
    except lifecycle.InvalidEvent as error:
        field_id, label = SERVICE_FIELDS.get(error.field, (FIRST_FIELD[EventKind(kind)], ""))
        errors.add(f"{kind}-{field_id}", f"{label} {error.message}.".strip())
    version = read_whole_number(form_text(form, "version", 12), lowest=1, highest=2**31)
    status_code = 422
    if event is not None and not errors:
        data = {
            **service.event_payload(event),
            **({"note": values["note"]} if values["note"] else {}),
        }
        try:
            service.record_event(
                session,
                referral=referral,
                event=event,
                data=data,
                principal=user,
                expected_version=version,
                policy=service.policies_from(settings),
                now=utcnow(),
            )
        except ExhaleError as error:
            fallback = FIRST_FIELD[EventKind(kind)]
            status_code = refused(
                session, error, errors, SERVICE_FIELDS, fallback, prefix=f"{kind}-"
            )
        else:
            session.commit()  # see app.api.readings: commit in the route, then redirect
            target = safe_next(return_to) if return_to else f"/referrals/{id}#timeline"
            return RedirectResponse(target, status_code=303)
    else:
        session.rollback()
    return _referral_page(
        request,
        session,
        settings,
        user,
        referral_id=id,
        errors=errors,
        open_kind=kind,
        values=values,
        return_to=return_to,
        status_code=status_code,
    )
