"""Referrals: opened by the rules when a reading calls for one, then worked through their lifecycle.

Every change here is written in the caller's transaction together with its event, its outbox
message for the stop-smoking service, and its audit row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, aliased

from app.audit import service as audit
from app.clock import local_date
from app.config import Settings
from app.errors import Conflict, FieldError, InvalidInput
from app.identity.principal import Principal
from app.orgs.models import Organisation
from app.pregnancies.models import Pregnancy
from app.readings.models import Reading
from referral import lifecycle, rules, sla
from referral.delivery.service import enqueue_referral_event
from referral.lifecycle import CLOSED_STATUSES, ReferralStatus
from referral.models import Referral, ReferralEvent, ServiceArea

RULESET = "r1"

# Building the bank-holiday calendar costs milliseconds (it computes each year's holidays), which
# dominated recording a reading that refers; one per process, filled lazily as years are asked
# for, under a lock because the calendar fills itself in on lookup and requests run in threads.
_CALENDAR = sla.england_bank_holidays()
_CALENDAR_LOCK = threading.Lock()


def first_contact_due(opened_at: dt.datetime, *, working_days: int) -> dt.datetime:
    """``sla.first_contact_due`` with England's bank holidays, on this process's calendar."""
    with _CALENDAR_LOCK:
        return sla.first_contact_due(opened_at, working_days=working_days, calendar=_CALENDAR)


@dataclass(frozen=True)
class Policies:
    rules: rules.Policy
    lifecycle: lifecycle.LifecyclePolicy
    first_contact_working_days: int


def policies_from(settings: Settings) -> Policies:
    """Policies from the settings; the version names the rule set and a digest of its thresholds."""
    r = settings.referral
    thresholds = {
        "threshold_ppm": r.threshold_ppm,
        "source_check_ppm": r.source_check_ppm,
        "poisoning_risk_above_ppm": r.poisoning_risk_above_ppm,
        "urgent_above_ppm": r.urgent_above_ppm,
        "recently_stopped_days": r.recently_stopped_days,
    }
    digest = hashlib.sha256(json.dumps(thresholds, sort_keys=True).encode()).hexdigest()[:8]
    return Policies(
        rules=rules.Policy(version=f"{RULESET}-{digest}", **thresholds),
        lifecycle=lifecycle.LifecyclePolicy(
            max_contact_attempts=r.max_contact_attempts,
            co_confirmed_quit_below_ppm=r.co_confirmed_quit_below_ppm,
            quit_date_max_days_ahead=r.quit_date_max_days_ahead,
        ),
        first_contact_working_days=r.first_contact_working_days,
    )


_REFERRALS_OF = (
    select(Referral).where(Referral.pregnancy_id == bindparam("pregnancy_id")).order_by(Referral.id)
)


def _history(session: Session, pregnancy_id: int) -> tuple[tuple[str, ...], Referral | None]:
    referrals = list(session.scalars(_REFERRALS_OF, {"pregnancy_id": pregnancy_id}))
    closed = tuple(r.status for r in referrals if r.status in CLOSED_STATUSES)
    open_ = next((r for r in referrals if r.closed_at is None), None)
    return closed, open_


_HELD = "exhale.referral.held"


def _hold(session: Session, *objects: object) -> None:
    """Keep objects this request will read again in the session's identity map.

    The identity map holds objects weakly: a referral or unit no local variable refers to any
    more is dropped, and the next ``session.get`` for it is another round trip (the answer's
    referral summary, the outbox message's unit code). The session lives for one request.
    """
    session.info.setdefault(_HELD, []).extend(objects)


def postcode_district(postcode: str | None) -> str | None:
    if not postcode or " " not in postcode.strip():
        return None
    return postcode.strip().upper().split()[0]


# Routing in one round trip: the unit (kept for the outbox message's unit code) and the service
# it routes to, by a service area for the postcode district when there is one. Built once:
# building a statement costs more CPU than SQLAlchemy's cached compile of it.
_SERVICE = aliased(Organisation)
_AREA_SERVICE = (
    select(ServiceArea.service_id)
    .where(
        ServiceArea.unit_id == Organisation.id,
        ServiceArea.postcode_district == bindparam("district"),
    )
    .scalar_subquery()
)
_UNIT_AND_DEFAULT = select(Organisation, _SERVICE).where(Organisation.id == bindparam("unit_id"))
_ROUTE_BY_UNIT = _UNIT_AND_DEFAULT.outerjoin(
    _SERVICE, _SERVICE.id == Organisation.default_service_id
)
_ROUTE_BY_DISTRICT = _UNIT_AND_DEFAULT.outerjoin(
    _SERVICE, _SERVICE.id == func.coalesce(_AREA_SERVICE, Organisation.default_service_id)
)


def route(session: Session, pregnancy: Pregnancy) -> Organisation:
    """The service for her postcode district at her unit, else the unit's default service."""
    district = postcode_district(pregnancy.postcode)
    statement = _ROUTE_BY_DISTRICT if district else _ROUTE_BY_UNIT
    unit, target = session.execute(
        statement, {"unit_id": pregnancy.unit_id, "district": district}
    ).one()
    _hold(session, unit, target)
    if target is None:
        raise Conflict(
            f"Unit {unit.code} has no stop-smoking service to refer to. An administrator sets "
            "one with `exhale orgs set-default-service`."
        )
    assert isinstance(target, Organisation)
    return target


def _add_event(
    session: Session,
    *,
    referral: Referral,
    kind: str,
    data: dict[str, Any],
    principal: Principal,
    now: dt.datetime,
) -> ReferralEvent:
    event = ReferralEvent(
        referral_id=referral.id,
        kind=kind,
        data=data,
        actor_type=principal.actor_type.value,
        actor_id=principal.id,
        actor_name=principal.name,
        occurred_at=now,
        created_at=now,
    )
    session.add(event)
    return event


@dataclass(frozen=True)
class ReadingPlan:
    """What the rules decided for a reading about to be stored.

    ``referral`` is the referral the reading goes to: the pregnancy's open one (its reasons
    already extended), or a new one added to the session, not yet flushed (``opened``).
    """

    decision: rules.Decision
    reasons: list[str]
    referral: Referral | None
    opened: bool


def plan_for_reading(
    session: Session,
    *,
    reading: Reading,
    pregnancy: Pregnancy,
    policy: Policies,
    now: dt.datetime,
    first_reading: bool = False,
) -> ReadingPlan:
    """Run the rules on a reading before it is stored, and set its advice and policy version.

    The referral it refers to is opened (added, unflushed) or extended here, so that the
    reading is inserted once, already carrying its referral; ``after_reading`` then writes the
    referral's event and outbox message. ``first_reading``: the pregnancy was registered by this
    reading, in this transaction, so it has no referrals (a query fewer).
    """
    closed, open_referral = ((), None) if first_reading else _history(session, pregnancy.id)
    facts = rules.ReadingFacts(
        outcome=rules.ReadingOutcome(reading.outcome),
        smoking_status=rules.SmokingStatus(reading.smoking_status),
        tested_on=local_date(reading.measured_at),
        co_ppm=reading.co_ppm,
        stopped_smoking_on=reading.stopped_smoking_on,
        earlier_referral_outcomes=closed,
        has_open_referral=open_referral is not None,
    )
    decision = rules.evaluate(facts, policy.rules)
    reasons = [reason.value for reason in decision.reasons]
    reading.advice = [{"code": a.code.value, "text": a.text} for a in decision.advice]
    reading.policy_version = decision.policy_version
    if open_referral is not None:
        _hold(session, open_referral)
    if not decision.refer:
        return ReadingPlan(decision, reasons, None, opened=False)
    if open_referral is not None:
        open_referral.reasons = list(dict.fromkeys([*open_referral.reasons, *reasons]))
        return ReadingPlan(decision, reasons, open_referral, opened=False)
    referral = Referral(
        pregnancy_id=pregnancy.id,
        service=route(session, pregnancy),
        status=ReferralStatus.pending.value,
        reasons=reasons,
        policy_version=policy.rules.version,
        opened_at=now,
        first_contact_due_at=first_contact_due(now, working_days=policy.first_contact_working_days),
    )
    session.add(referral)
    _hold(session, referral)
    return ReadingPlan(decision, reasons, referral, opened=True)


def after_reading(
    session: Session,
    plan: ReadingPlan,
    *,
    reading: Reading,
    principal: Principal,
    now: dt.datetime,
    latest_reading: Reading | None = None,
) -> None:
    """Once the reading is stored: its referral's event and the outbox message for the service.

    The caller audits the opened referral. ``latest_reading``, when the caller knows the reading
    is her latest, saves looking it up for the message.
    """
    referral = plan.referral
    if referral is None:
        return
    _add_event(
        session,
        referral=referral,
        kind="created" if plan.opened else "reason_added",
        data={"reasons": plan.reasons, "reading_id": reading.id},
        principal=principal,
        now=now,
    )
    enqueue_referral_event(
        session,
        referral=referral,
        event_type="referral.created" if plan.opened else "referral.updated",
        now=now,
        latest_reading=latest_reading,
    )


# --- working a referral -------------------------------------------------------------------------


def state_of(referral: Referral) -> lifecycle.ReferralState:
    return lifecycle.ReferralState(
        opened_at=referral.opened_at,
        status=lifecycle.ReferralStatus(referral.status),
        reasons=tuple(referral.reasons),
        failed_contact_attempts=referral.failed_contact_attempts,
        quit_date=referral.quit_date,
        last_outcome_stage=(
            lifecycle.OutcomeStage(referral.last_outcome_stage)
            if referral.last_outcome_stage
            else None
        ),
        closed_at=referral.closed_at,
    )


def check_version(referral: Referral, expected: int | None) -> None:
    if expected is None:
        raise PreconditionRequired(
            "Send the version you are changing, as If-Match (the ETag of the referral) or "
            "as `version` in the body, so that no one's change is lost."
        )
    if expected != referral.version:
        raise Conflict(
            f"Someone else changed this referral (now version {referral.version}, you sent "
            f"{expected}). Reload it, check what changed, and try again.",
            code="version_conflict",
        )


class PreconditionRequired(InvalidInput):
    status_code = 428
    code = "precondition_required"


def record_event(
    session: Session,
    *,
    referral: Referral,
    event: lifecycle.Event,
    data: dict[str, Any],
    principal: Principal,
    expected_version: int | None,
    policy: Policies,
    now: dt.datetime,
) -> ReferralEvent:
    """Apply one event through the lifecycle; 409 names the allowed moves, 422 the bad field.

    Every caller (API, pages) records events here, so the checks that need her pregnancy, which
    the pure lifecycle does not see, are made here too: see ``_check_fits_pregnancy``.
    """
    check_version(referral, expected_version)
    before = state_of(referral)
    try:
        after = lifecycle.apply(before, event, policy.lifecycle, now=now)
    except lifecycle.IllegalTransition as error:
        raise Conflict(str(error), code="illegal_transition") from None
    except lifecycle.InvalidEvent as error:
        raise InvalidInput(
            f"Check {error.field}.", fields=[FieldError(error.field, error.message)]
        ) from None
    _check_fits_pregnancy(session, referral=referral, event=event)
    referral.status = after.status.value
    referral.reasons = list(after.reasons)
    referral.failed_contact_attempts = after.failed_contact_attempts
    referral.quit_date = after.quit_date
    referral.last_outcome_stage = (
        after.last_outcome_stage.value if after.last_outcome_stage else None
    )
    if isinstance(event, lifecycle.OutcomeCheck):
        referral.last_outcome_result = event.result.value
    referral.closed_at = after.closed_at
    stored = _add_event(
        session, referral=referral, kind=event.kind.value, data=data, principal=principal, now=now
    )
    session.flush()
    audit.record(
        session,
        actor=principal,
        action=audit.Action.update,
        record_type="referral",
        record_id=referral.id,
        subject_pregnancy_id=referral.pregnancy_id,
        detail={"event": event.kind.value},
    )
    event_type = "referral.closed" if not after.is_open else "referral.updated"
    enqueue_referral_event(session, referral=referral, event_type=event_type, now=now)
    return stored


def _check_fits_pregnancy(session: Session, *, referral: Referral, event: lifecycle.Event) -> None:
    """Refuse an after-the-birth outcome while her pregnancy has no birth recorded.

    The after-birth outcome completes the referral, so one recorded during pregnancy would shut
    out the follow-ups still to come (28 days, 12 weeks, end of pregnancy).
    """
    if not isinstance(event, lifecycle.OutcomeCheck):
        return
    if event.stage is not lifecycle.OutcomeStage.after_birth:
        return
    pregnancy = session.get(Pregnancy, referral.pregnancy_id)
    assert pregnancy is not None
    if pregnancy.born_on is None:
        raise InvalidInput(
            "The outcome after the birth needs the birth recorded first (by her midwife or the "
            f"maternity record: POST /api/v1/pregnancies/{referral.pregnancy_id}/birth).",
            fields=[
                FieldError(
                    "stage",
                    "is after the birth, but no birth is recorded for this pregnancy: "
                    "record the birth first",
                )
            ],
        )


def accept(
    session: Session, *, referral: Referral, principal: Principal, now: dt.datetime
) -> Referral:
    """The stop-smoking service's system has taken the referral in; shown in the queue."""
    if referral.accepted_at is None:
        referral.accepted_at = now
        _add_event(
            session, referral=referral, kind="accepted", data={}, principal=principal, now=now
        )
        session.flush()
        audit.record(
            session,
            actor=principal,
            action=audit.Action.update,
            record_type="referral",
            record_id=referral.id,
            subject_pregnancy_id=referral.pregnancy_id,
            detail={"event": "accepted"},
        )
    return referral


def event_payload(event: lifecycle.Event) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(event).items()}
