"""What a reading decided by ``app.readings.combined`` writes, and the answer it gives.

Plain values stand in for the ORM's objects (``Her``, ``NewReferral``, ``Tested``): the decision
functions and the outbox message read them through protocols, and building and instrumenting ORM
objects cost a tenth of the fast path's CPU. The rows are the general path's, column for column;
``tests/app/test_fast_readings.py`` compares them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from app import sql_batch
from app.audit import service as audit
from app.audit.models import AuditEvent
from app.identity.principal import Principal
from app.measures.models import MeasureMark
from app.measures.rollup import marks_for_new_reading
from app.monitors import service as monitors
from app.pregnancies import service as pregnancies
from app.pregnancies.models import Contact, ContactKind
from app.readings import service
from app.readings.models import Reading
from app.readings.schemas import ReadingCreate, ReadingRead, ReferralSummary
from referral import rules
from referral import service as referrals
from referral.delivery.service import NOTIFY_CHANNEL
from referral.delivery.webhooks import envelope, new_webhook_id, referral_data
from referral.lifecycle import ReferralStatus
from referral.models import OutboxMessage, OutboxStatus, Referral, ReferralEvent

_NOTIFY = f"SELECT pg_notify('{NOTIFY_CHANNEL}', '') AS notified"
_NOTHING_MORE = "SELECT 1 AS written"


@dataclass(frozen=True)
class Posted:
    """The request's reading, its sender, and what the lookup did not need to find."""

    body: ReadingCreate
    principal: Principal
    unit_code: str
    nhs_number: str
    details: dict[str, Any]
    policy: referrals.Policies
    now: dt.datetime
    on: dt.date  # the test's date in England


@dataclass
class Plan:
    """What the reading writes, once the lookup has been read."""

    pregnancy: Her
    registered: bool
    kind: ContactKind
    contact_id: int | None  # an existing contact that day, else one is added
    decision: rules.Decision
    calibration_due: dt.date | None
    rows: list[sql_batch.Row] = field(default_factory=list)


@dataclass(frozen=True)
class ContactDay:
    kind: str
    occurred_on: dt.date


@dataclass(frozen=True)
class Her:
    """Her pregnancy's facts for the dating rules and the message: plain values, no ORM object
    (building and instrumenting those cost a tenth of this path's CPU)."""

    id: int
    unit_id: int
    nhs_number: str
    estimated_due_date: dt.date
    born_on: dt.date | None = None
    given_name: str | None = None
    family_name: str | None = None
    date_of_birth: dt.date | None = None
    phone: str | None = None
    postcode: str | None = None
    contacts: tuple[ContactDay, ...] = ()


@dataclass(frozen=True)
class NewReferral:
    id: int
    service_id: int
    status: str
    reasons: list[str]
    opened_at: dt.datetime
    first_contact_due_at: dt.datetime | None
    closed_at: dt.datetime | None = None


@dataclass(frozen=True)
class Tested:
    """The reading as stored, for the outbox message and the answer."""

    id: int
    pregnancy_id: int
    measured_at: dt.datetime
    outcome: str
    co_ppm: int | None
    smoking_status: str
    stopped_smoking_on: dt.date | None
    very_brief_advice_given: bool | None
    device_serial: str | None
    source_id: str | None
    advice: list[dict[str, Any]]


def written(r: Posted, plan: Plan, ids: Any) -> tuple[str, dict[str, str], ReadingRead]:
    """The statement writing every row (``ids``: the new rows' ids and the service the lookup
    took), its parameters, and the answer ``service.to_read`` would give once it has run."""
    body, principal, pregnancy, now = r.body, r.principal, plan.pregnancy, r.now
    assert body.measured_at is not None and principal.organisation_id is not None
    contact_id, new_contact = plan.contact_id, plan.contact_id is None
    if new_contact:
        contact_id = ids.new_contact
        contact = {
            "id": contact_id,
            "pregnancy_id": pregnancy.id,
            "kind": plan.kind.value,
            "occurred_on": r.on,
            "gestation_days": pregnancies.gestation_days(pregnancy, r.on),
        }
        plan.rows.append((Contact, contact))
    decision = plan.decision
    reasons = [reason.value for reason in decision.reasons]
    referral = None
    if decision.refer:
        referral = NewReferral(
            id=ids.new_referral,
            service_id=ids.service_id,
            status=ReferralStatus.pending.value,
            reasons=reasons,
            opened_at=now,
            first_contact_due_at=referrals.first_contact_due(
                now, working_days=r.policy.first_contact_working_days
            ),
        )
        referral_row = {
            "id": referral.id,
            "pregnancy_id": pregnancy.id,
            "service_id": referral.service_id,
            "status": referral.status,
            "reasons": reasons,
            "policy_version": r.policy.rules.version,
            "opened_at": now,
            "first_contact_due_at": referral.first_contact_due_at,
        }
        plan.rows.append((Referral, referral_row))
    reading_values = {
        "id": ids.new_reading,
        "pregnancy_id": pregnancy.id,
        "contact_id": contact_id,
        "measured_at": body.measured_at,
        "outcome": body.outcome.value,
        "co_ppm": body.co_ppm,
        "smoking_status": body.smoking_status.value,
        "stopped_smoking_on": body.stopped_smoking_on,
        "very_brief_advice_given": body.very_brief_advice_given,
        "device_serial": body.device_serial,
        "source_id": body.source_id,
        "api_client_id": principal.id,
        "recorded_by_user_id": None,
        "referral_id": referral.id if referral else None,
        "advice": [{"code": a.code.value, "text": a.text} for a in decision.advice],
        "policy_version": decision.policy_version,
    }
    plan.rows.append((Reading, reading_values))
    created: list[tuple[str | None, str | int | None, int | None]] = []
    if plan.registered:
        created.append((pregnancies.RECORD_TYPE, pregnancy.id, pregnancy.id))
    if referral is not None:
        created.append(("referral", referral.id, pregnancy.id))
    created.append((service.RECORD_TYPE, reading_values["id"], pregnancy.id))
    plan.rows += [
        (AuditEvent, row)
        for row in audit.allowed_rows(actor=principal, action=audit.Action.create, records=created)
    ]
    tested = Tested(**{k: reading_values[k] for k in Tested.__dataclass_fields__})
    if referral is not None:
        plan.rows += _referral_messages(r, plan, referral, tested, ids)
    plan.rows += [
        (MeasureMark, mark)
        for mark in marks_for_new_reading(
            principal.organisation_id,
            measured_at=body.measured_at,
            contact_on=r.on if new_contact else None,
            referral_opened_at=now if referral is not None else None,
        )
    ]
    statement, parameters = sql_batch.statement(
        plan.rows, then=_NOTIFY if referral is not None else _NOTHING_MORE
    )
    return (
        statement,
        parameters,
        service.answer(
            tested,
            contact=plan.kind.value,
            gestation_days=pregnancies.gestation_days(pregnancy, r.on),
            referral=ReferralSummary(id=referral.id, status=referral.status, reasons=reasons)
            if referral is not None
            else None,
            calibration_warning=monitors.calibration_warning(plan.calibration_due, r.on)
            if body.device_serial is not None
            else None,
        ),
    )


def _referral_messages(
    r: Posted, plan: Plan, referral: NewReferral, reading: Tested, ids: Any
) -> list[sql_batch.Row]:
    """The new referral's ``created`` event and its outbox message (``after_reading``)."""
    principal, now = r.principal, r.now
    data = referral_data(
        referral=referral,
        service_code=ids.service_code,
        unit_code=r.unit_code,
        pregnancy=plan.pregnancy,
        reading=reading,
    )
    event = {
        "referral_id": referral.id,
        "kind": "created",
        "data": {"reasons": list(referral.reasons), "reading_id": reading.id},
        "actor_type": principal.actor_type.value,
        "actor_id": principal.id,
        "actor_name": principal.name,
        "occurred_at": now,
        "created_at": now,
    }
    message = {
        "service_id": referral.service_id,
        "referral_id": referral.id,
        "event_type": "referral.created",
        "webhook_id": new_webhook_id(),
        "payload": envelope(event_type="referral.created", occurred_at=now, data=data),
        "status": OutboxStatus.pending.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    return [(ReferralEvent, event), (OutboxMessage, message)]
