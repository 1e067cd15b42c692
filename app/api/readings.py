"""Recording CO tests."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse

from app.api import fast_readings
from app.api.auth import require
from app.api.deps import RecordId, SessionDep, SettingsDep
from app.api.strict_json import StrictJsonRoute
from app.db import utcnow
from app.idempotency import service as idempotency
from app.identity.principal import Principal
from app.readings import service
from app.readings.schemas import ReadingCreate, ReadingRead


class ReadingRoute(StrictJsonRoute):
    """Creating a reading tries ``fast_readings`` first (PostgreSQL), which may decline."""

    async def answer_first(self, request: Request, parsed: Any) -> Response | None:
        transactions = request.app.state.reading_transactions
        if transactions is None or self.name != "create_reading":
            return None
        answer = await fast_readings.record(
            request, parsed, settings=request.app.state.settings, transactions=transactions
        )
        request.app.state.metrics.fast_readings.labels("fast" if answer else "declined").inc()
        return answer


router = APIRouter(prefix="/api/v1/readings", tags=["readings"], route_class=ReadingRoute)

EXAMPLE_ANSWER = {
    "id": 1042,
    "pregnancy_id": 311,
    "contact": "booking",
    "gestation_days": 84,
    "measured_at": "2026-11-26T10:15:00Z",
    "outcome": "measured",
    "co_ppm": 6,
    "smoking_status": "smoker",
    "stopped_smoking_on": None,
    "very_brief_advice_given": None,
    "device_serial": "PB-104233",
    "source_id": "epr-obs-000123",
    "referral": {"id": 77, "status": "pending", "reasons": ["co_elevated", "self_reported_smoker"]},
    "advice": [
        {
            "code": "referral_made",
            "text": "Tell her: 'We refer everyone in this situation to the stop-smoking service, "
            "who will contact you for support. It's free, and you can say no.' ...",
        }
    ],
    "calibration_warning": None,
}

DESCRIPTION = """
Records one CO test against the right woman and appointment. Roles: epr, bridge, midwife.

**The pregnancy.** The reading belongs to your unit's current pregnancy for the NHS number: one
that started 280 days before its due date and has not ended (a recorded birth, or 44 weeks'
gestation without one; postnatal tests belong to the pregnancy for 56 days after the birth). When
your unit has none, send `pregnancy` with at least `estimated_due_date` and a new one is
registered. A `pregnancy` sent for an existing one updates what differs (audited).

**The contact**, when not given, is derived in this order: on or after a recorded birth,
`postnatal`; a contact already recorded that day, the same one; no booking yet, `booking`; at
35+0 to 37+6 weeks with no 36-week contact yet, `36_weeks`; otherwise `antenatal`. A test sent
as `36_weeks` must be at 34+0 to 38+6 weeks (422 otherwise: it would count in the measures' "at
36 weeks").

**Re-sends.** With an `Idempotency-Key` header (yours, per client) the same body returns the stored
answer (200); the same key with another body is 422 `idempotency_key_reused`; while the first is
still running, 409 with `Retry-After`. Without a key, the same `source_id` from the same sender
returns the stored reading (200).

**The answer** carries the rules' decision: `referral` (the opt-out referral made or added to,
or null) and `advice` (what to say now, most urgent first).
"""


@router.post(
    "",
    status_code=201,
    response_model=ReadingRead,
    summary="Record a CO test",
    description=DESCRIPTION,
    responses={
        201: {
            "description": "Recorded",
            "content": {"application/json": {"example": EXAMPLE_ANSWER}},
        },
        200: {"description": "A re-send: the stored answer"},
        400: {"description": "Malformed JSON, duplicate keys, NaN, or nested too deep"},
        409: {
            "description": "A request with this Idempotency-Key is still running; or the "
            "booking/36-week contact is already on another day"
        },
        404: {"description": "`device_reading_id` names no monitor result at the caller's unit"},
        413: {"description": "Body over 64 KB"},
        415: {"description": "Not sent as application/json"},
        422: {"description": "A field is wrong: `fields` names it and the fix"},
    },
)
def create_reading(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(*fast_readings.ROLES)],
    body: ReadingCreate,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", description="Your key for this request")
    ] = None,
) -> Any:
    now = utcnow()
    caller = f"{principal.actor_type.value}:{principal.id}"
    if idempotency_key is not None:
        key = idempotency.check_key(idempotency_key)
        digest = idempotency.digest_of("POST", request.url.path, json.loads(request._body))
        session.commit()  # the claim gets a transaction of its own, visible to repeats at once
        stored = idempotency.claim(session, caller=caller, key=key, digest=digest, now=now)
        session.commit()
        if stored is not None:
            return JSONResponse(stored.body, status_code=200)
    try:
        recorded = service.record(
            session, principal=principal, body=body, settings=settings, now=now
        )
        answer = service.to_read(session, recorded.reading)
        status_code = 201 if recorded.created else 200
        if idempotency_key is not None:
            idempotency.complete(
                session,
                caller=caller,
                key=idempotency_key,
                status_code=status_code,
                body=answer.as_json(),
                now=now,
            )
    except Exception:
        if idempotency_key is not None:
            session.rollback()
            idempotency.release(session, caller=caller, key=idempotency_key)
            session.commit()
        raise
    # Commit here, not in the session dependency's teardown: the teardown waits for a free
    # worker thread, and the woman's lock must never wait for one (threads may all be taken by
    # requests queueing for that lock).
    session.commit()
    # Serialised here, once: the answer is already a validated ReadingRead.
    return Response(
        answer.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers={"Location": f"/api/v1/readings/{answer.id}"},
    )


@router.get(
    "/{id}",
    summary="Read one reading",
    description="Roles: midwife (her unit's), epr and bridge (what they posted). Audited.",
)
def read_reading(
    id: RecordId,
    session: SessionDep,
    principal: Annotated[
        Principal, require("midwife", "epr", "bridge", record=service.RECORD_TYPE)
    ],
) -> ReadingRead:
    reading = service.get_for_reader_or_raise(session, principal=principal, reading_id=id)
    return service.to_read(session, reading)
