"""The referral queue: advisors work referrals to an outcome; services acknowledge them."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.auth import require
from app.api.deps import RecordId, SessionDep, SettingsDep
from app.api.errors import error_answers
from app.api.strict_json import StrictJsonRoute
from app.db import utcnow
from app.errors import FieldError, Forbidden, InvalidInput
from app.fields import MAX_RECORD_ID
from app.identity.principal import Principal
from app.pregnancies.models import Pregnancy
from app.readings.models import Reading
from referral import lifecycle, queue, service
from referral.models import Referral
from referral.schemas import (
    EventCreate,
    EventRead,
    LatestReading,
    QueueItem,
    ReferralDetail,
    ReferralPage,
    ReferralRead,
    Woman,
)

router = APIRouter(prefix="/api/v1/referrals", tags=["referrals"], route_class=StrictJsonRoute)

# OpenAPI links from the queue to the first referral in it: how a client (or schemathesis'
# stateful tests) goes from the list to one referral's reads and writes.
_FIRST = {"id": "$response.body#/items/0/id"}
QUEUE_LINKS = {
    "ReadFirst": {"operationRef": "#/paths/~1api~1v1~1referrals~1{id}/get", "parameters": _FIRST},
    "RecordEventOnFirst": {
        "operationRef": "#/paths/~1api~1v1~1referrals~1{id}~1events/post",
        "parameters": _FIRST,
    },
    "AcceptFirst": {
        "operationRef": "#/paths/~1api~1v1~1referrals~1{id}~1accept/post",
        "parameters": _FIRST,
    },
}
READERS = ("advisor", "service", "midwife")
WORKERS = ("advisor", "service", "midwife")


def _pregnancy(session: Session, referral: Referral) -> Pregnancy:
    pregnancy = session.get(Pregnancy, referral.pregnancy_id)
    assert pregnancy is not None
    return pregnancy


@router.get(
    "",
    summary="The referral queue",
    description=(
        "Roles: advisor and service (referrals routed to their service), midwife (her unit's; "
        "`handed_back=true` lists those that came back uncontactable or not engaged). First "
        "contact due soonest first. Each listed referral is audited."
    ),
    responses={200: {"links": QUEUE_LINKS}},
)
def list_referrals(
    session: SessionDep,
    principal: Annotated[Principal, require(*READERS)],
    status: Annotated[list[lifecycle.ReferralStatus] | None, Query()] = None,
    overdue: Annotated[bool | None, Query(description="Only (or never) overdue ones")] = None,
    service_code: Annotated[str | None, Query(alias="service", max_length=16)] = None,
    handed_back: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
) -> ReferralPage:
    now = utcnow()
    where = queue.QueueFilter(
        statuses=tuple(s.value for s in status or ()),
        overdue=overdue,
        service_code=service_code,
        handed_back=handed_back,
    )
    rows, total = queue.list_queue(
        session, principal=principal, where=where, now=now, page=page, page_size=page_size
    )
    items = []
    for referral in rows:
        pregnancy = _pregnancy(session, referral)
        items.append(
            QueueItem(
                **ReferralRead.model_validate(referral).model_dump(),
                overdue=queue.is_overdue(referral, now),
                given_name=pregnancy.given_name,
                family_name=pregnancy.family_name,
                unit_code=pregnancy.unit_code,
            )
        )
    return ReferralPage(items=items, total=total, page=page, page_size=page_size)


def _detail(session: Session, referral: Referral) -> ReferralDetail:
    pregnancy = _pregnancy(session, referral)
    latest = session.scalars(
        select(Reading)
        .where(Reading.pregnancy_id == pregnancy.id)
        .order_by(Reading.measured_at.desc())
        .limit(1)
    ).first()
    return ReferralDetail(
        **ReferralRead.model_validate(referral).model_dump(),
        overdue=queue.is_overdue(referral, utcnow()),
        woman=Woman(
            nhs_number=pregnancy.nhs_number,
            given_name=pregnancy.given_name,
            family_name=pregnancy.family_name,
            date_of_birth=pregnancy.date_of_birth,
            phone=pregnancy.phone,
            postcode=pregnancy.postcode,
            estimated_due_date=pregnancy.estimated_due_date,
            unit_code=pregnancy.unit_code,
        ),
        latest_reading=LatestReading(
            measured_at=latest.measured_at,
            outcome=latest.outcome,
            co_ppm=latest.co_ppm,
            smoking_status=latest.smoking_status,
        )
        if latest
        else None,
        events=[EventRead.model_validate(e) for e in queue.events_of(session, referral)],
        allowed_events=[k.value for k in lifecycle.allowed_events(service.state_of(referral))],
    )


def _etag(response: Response, referral: Referral) -> None:
    response.headers["ETag"] = f'"{referral.version}"'


@router.get(
    "/{id}",
    summary="Read one referral with her contact details and the timeline",
    description=(
        "Roles: advisor, service (referrals routed to their service), midwife (her unit's). "
        "Any other referral is 404. Audited. The ETag is the version to send back as If-Match."
    ),
)
def read_referral(
    id: RecordId,
    response: Response,
    session: SessionDep,
    principal: Annotated[Principal, require(*READERS, record=queue.RECORD_TYPE)],
) -> ReferralDetail:
    referral = queue.get_for_reader_or_raise(session, principal=principal, referral_id=id)
    _etag(response, referral)
    return _detail(session, referral)


def _expected_version(if_match: str | None, body_version: int | None) -> int | None:
    if if_match is not None:
        match = re.fullmatch(r'\s*(?:W/)?"?(\d{1,10})"?\s*', if_match)
        if not match or int(match.group(1)) > MAX_RECORD_ID:
            raise InvalidInput(
                "Check If-Match.", fields=[FieldError("If-Match", 'send the ETag, for example "3"')]
            )
        return int(match.group(1))
    return body_version


@router.post(
    "/{id}/events",
    status_code=201,
    summary="Record what happened: a contact attempt, assessment, treatment, quit date, outcome, "
    "opt-out",
    description=(
        "Roles: advisor and service (their service's referrals), midwife (her unit's: for an "
        "opt-out at the appointment). Send the version you read (If-Match or `version`): a "
        "referral changed meanwhile is 409. A move the referral's status does not allow is 409 "
        "naming the allowed ones."
    ),
    responses=error_answers(r428="Neither If-Match nor `version` says which version changes"),
)
def record_event(
    id: RecordId,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(*WORKERS, record=queue.RECORD_TYPE)],
    body: Annotated[EventCreate, Body()],
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> ReferralDetail:
    referral = queue.get_for_reader_or_raise(
        session, principal=principal, referral_id=id, action="update"
    )
    event = body.event()
    if principal.role == "midwife" and not isinstance(event, lifecycle.OptOut):
        raise Forbidden(
            "A midwife records an opt-out here; the stop-smoking service records the rest.",
            fields=[FieldError("kind", "midwives may send opt_out only")],
        )
    data = {**service.event_payload(event), **({"note": body.note} if body.note else {})}
    service.record_event(
        session,
        referral=referral,
        event=event,
        data=data,
        principal=principal,
        expected_version=_expected_version(if_match, body.version),
        policy=service.policies_from(settings),
        now=utcnow(),
    )
    answer = _detail(session, referral)
    session.commit()  # see app.api.readings: locks are released without waiting for a thread
    _etag(response, referral)
    return answer


@router.post(
    "/{id}/accept",
    summary="Acknowledge the referral in the service's own system",
    description="Role: service (referrals routed to it). Shown in the advisors' queue.",
)
def accept_referral(
    id: RecordId,
    response: Response,
    session: SessionDep,
    principal: Annotated[Principal, require("service", record=queue.RECORD_TYPE)],
) -> ReferralRead:
    referral = queue.get_for_reader_or_raise(
        session, principal=principal, referral_id=id, action="update"
    )
    service.accept(session, referral=referral, principal=principal, now=utcnow())
    answer = ReferralRead.model_validate(referral)
    session.commit()
    _etag(response, referral)
    return answer
