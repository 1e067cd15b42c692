"""Recording a CO test: once, against the right woman and appointment, whoever sends it.

Everything a reading causes (the pregnancy when new, the contact, the reading, the rules'
decision, the referral and its outbox message, the audit rows) is written in the caller's one
transaction. Re-sends are answered from the database: a sender's ``source_id`` is unique.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import TextClause, bindparam, select, text
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.clock import local_date
from app.config import Settings
from app.errors import FieldError, InvalidInput, NotFound
from app.identity.principal import Principal
from app.monitors import service as monitors
from app.monitors.models import DeviceReading, Monitor
from app.pregnancies import service as pregnancies
from app.pregnancies.models import Contact, ContactKind, Pregnancy
from app.pregnancies.nhs_number import InvalidNhsNumberError, normalise_nhs_number
from app.readings.models import Reading
from app.readings.schemas import AdviceRead, ReadingCreate, ReadingRead, ReferralSummary
from referral import service as referrals
from referral.models import Referral

RECORD_TYPE = "reading"
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Recorded:
    reading: Reading
    created: bool


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"Check {field}.", fields=[FieldError(field, message)])


def check(body: ReadingCreate, settings: Settings, now: dt.datetime) -> str:
    """The body's checks that need no database; the NHS number normalised."""
    try:
        nhs_number = normalise_nhs_number(
            body.nhs_number, allow_synthetic=settings.synthetic_nhs_numbers_allowed
        )
    except InvalidNhsNumberError as error:
        raise _invalid("nhs_number", str(error)) from None
    if body.co_ppm is not None and not 0 <= body.co_ppm <= settings.max_co_ppm:
        raise _invalid("co_ppm", f"must be a whole number from 0 to {settings.max_co_ppm}")
    assert body.measured_at is not None
    if body.measured_at > now + FUTURE_TOLERANCE:
        raise _invalid("measured_at", "is in the future; check the clock of the sending device")
    if body.stopped_smoking_on is not None and body.stopped_smoking_on > local_date(
        body.measured_at
    ):
        raise _invalid("stopped_smoking_on", "is after the test; give the day she stopped")
    return nhs_number


def _lock(session: Session, principal: Principal, nhs_number: str, source_id: str | None) -> None:
    """Serialise concurrent records for one woman at one unit, and for one sender's source id.

    Under both locks the check for a re-sent source id is final: no concurrent re-send (even
    one naming another woman) can insert a second reading. SQLite has one writer anyway.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(*lock_statement(principal, nhs_number, source_id))


def lock_statement(
    principal: Principal, nhs_number: str, source_id: str | None
) -> tuple[TextClause, dict[str, int | str]]:
    """The advisory locks (PostgreSQL) every path recording a reading takes, and their keys."""
    assert principal.organisation_id is not None
    woman: dict[str, int | str] = {
        "unit": principal.organisation_id,
        "woman": woman_lock_key(nhs_number),
    }
    if source_id is None:
        return _LOCK_WOMAN, woman
    sender = f"{principal.actor_type.value}:{principal.id}:{source_id}"
    return _LOCK_WOMAN_AND_SOURCE, {**woman, "sender": sender}


def woman_lock_key(nhs_number: str) -> int:
    """The second key of the woman's lock; the first is her unit's id."""
    return zlib.crc32(nhs_number.encode()) - 2**31


def _pregnancy_for(
    session: Session,
    *,
    principal: Principal,
    body: ReadingCreate,
    nhs_number: str,
    on: dt.date,
    settings: Settings,
) -> tuple[Pregnancy, bool]:
    """The pregnancy the reading belongs to, and whether this reading registered it."""
    assert principal.organisation_id is not None
    details = body.pregnancy.model_dump(exclude_unset=True) if body.pregnancy else None
    pregnancy = pregnancies.find_current(
        session,
        unit_id=principal.organisation_id,
        nhs_number=nhs_number,
        on=on,
        postnatal_days=settings.postnatal_days,
    )
    if pregnancy is None:
        if details is None:
            raise _invalid(
                "pregnancy",
                "required: your unit has no current pregnancy for this NHS number, so send "
                "pregnancy.estimated_due_date (and her contact details) to register it",
            )
        # Added, not flushed: it goes in with its first contact, and is audited with the reading.
        created = pregnancies.new(
            session, unit_id=principal.organisation_id, nhs_number=nhs_number, details=details
        )
        return created, True
    pregnancies.get_for_reader_or_raise(session, principal=principal, pregnancy_id=pregnancy.id)
    if details:
        pregnancies.update(session, principal=principal, pregnancy=pregnancy, changes=details)
    return pregnancy, False


def _contact_for(
    pregnancy: Pregnancy, body: ReadingCreate, on: dt.date, session: Session
) -> Contact:
    if on < pregnancies.starts_on(pregnancy):
        raise _invalid(
            "measured_at", "is before this pregnancy began (280 days before its due date)"
        )
    if pregnancy.born_on is None and on > pregnancies.antenatal_ends_on(pregnancy):
        raise _invalid("measured_at", "is after 44 weeks' gestation with no birth recorded")
    kind = body.contact or pregnancies.derive_contact_kind(pregnancy, on)
    pregnancies.check_contact_fits(pregnancy, ContactKind(kind), on)
    return pregnancies.get_or_create_contact(
        session, pregnancy=pregnancy, kind=ContactKind(kind), on=on
    )


# Built once (building a statement costs more than SQLAlchemy's cached compile of it).
# The id alone: nearly every post is new, and an empty answer with one column costs least.
_BY_CLIENT_SOURCE = select(Reading.id).where(
    Reading.api_client_id == bindparam("sender"), Reading.source_id == bindparam("source_id")
)
_BY_USER_SOURCE = select(Reading.id).where(
    Reading.recorded_by_user_id == bindparam("sender"), Reading.source_id == bindparam("source_id")
)
_LOCK_WOMAN = text("SELECT pg_advisory_xact_lock(:unit, :woman)")
# Always the woman first, then the source: one bigint key (a key space apart from the first),
# hashed by PostgreSQL from "<actor type>:<actor id>:<source id>", so that a statement can take
# it from the sender's row (app.api.fast_readings).
_LOCK_WOMAN_AND_SOURCE = text(
    "SELECT pg_advisory_xact_lock(:unit, :woman), "
    "pg_advisory_xact_lock(hashtextextended(:sender, 0))"
)


def _existing_by_source(session: Session, principal: Principal, source_id: str) -> Reading | None:
    statement = _BY_CLIENT_SOURCE if principal.is_client else _BY_USER_SOURCE
    found = session.scalars(statement, {"sender": principal.id, "source_id": source_id}).first()
    return None if found is None else session.get(Reading, found)


def _from_monitor(
    session: Session, principal: Principal, body: ReadingCreate
) -> tuple[ReadingCreate, DeviceReading | None]:
    """Fill the test from the monitor's result it names, which must be the unit's and unused."""
    if body.device_reading_id is None:
        return body, None
    assert principal.organisation_id is not None
    result = monitors.take_for_reading(
        session, unit_id=principal.organisation_id, device_reading_id=body.device_reading_id
    )
    if body.co_ppm is not None and body.co_ppm != result.co_ppm:
        raise _invalid(
            "co_ppm",
            f"differs from the monitor's result ({result.co_ppm} ppm); "
            "leave it out to use the monitor's",
        )
    filled = body.model_copy(
        update={
            "co_ppm": result.co_ppm,
            "measured_at": result.measured_at,
            "device_serial": result.device_serial,
        }
    )
    return filled, result


def record(
    session: Session,
    *,
    principal: Principal,
    body: ReadingCreate,
    settings: Settings,
    now: dt.datetime,
) -> Recorded:
    """Record one test and act on it; a re-sent ``source_id`` returns the stored reading."""
    assert principal.organisation_id is not None
    if body.source_id is not None and body.device_reading_id is not None:
        # A re-send naming a monitor result finds its reading before taking that result (which
        # its first send used); other re-sends are found below, under the locks.
        existing = _existing_by_source(session, principal, body.source_id)
        if existing is not None:
            return Recorded(existing, created=False)
    body, monitor_result = _from_monitor(session, principal, body)
    nhs_number = check(body, settings, now)
    _lock(session, principal, nhs_number, body.source_id)
    if body.source_id is not None:
        existing = _existing_by_source(session, principal, body.source_id)
        if existing is not None:
            return Recorded(existing, created=False)
    assert body.measured_at is not None
    on = local_date(body.measured_at)
    pregnancy, registered = _pregnancy_for(
        session, principal=principal, body=body, nhs_number=nhs_number, on=on, settings=settings
    )
    contact = _contact_for(pregnancy, body, on, session)
    session.flush()  # a new pregnancy and contact, in one flush
    reading = Reading(
        pregnancy_id=pregnancy.id,
        contact_id=contact.id,
        measured_at=body.measured_at,
        outcome=body.outcome.value,
        co_ppm=body.co_ppm,
        smoking_status=body.smoking_status.value,
        stopped_smoking_on=body.stopped_smoking_on,
        very_brief_advice_given=body.very_brief_advice_given,
        device_serial=body.device_serial,
        source_id=body.source_id,
        api_client_id=principal.id if principal.is_client else None,
        recorded_by_user_id=principal.id if principal.is_user else None,
    )
    plan = referrals.plan_for_reading(
        session,
        reading=reading,
        pregnancy=pregnancy,
        policy=referrals.policies_from(settings),
        now=now,
        first_reading=registered,
    )
    if plan.referral is not None:
        if plan.referral.id is None:
            session.flush()
        reading.referral_id = plan.referral.id
    session.add(reading)
    session.flush()
    if monitor_result is not None:
        monitor_result.reading_id = reading.id
    audited: list[tuple[str, str | int, int | None]] = []
    if registered:
        audited.append((pregnancies.RECORD_TYPE, pregnancy.id, pregnancy.id))
    if plan.opened:
        assert plan.referral is not None
        audited.append(("referral", plan.referral.id, pregnancy.id))
    audited.append((RECORD_TYPE, reading.id, pregnancy.id))
    audit.record_each(session, actor=principal, action=audit.Action.create, records=audited)
    referrals.after_reading(
        session,
        plan,
        reading=reading,
        principal=principal,
        now=now,
        latest_reading=reading if registered else None,
    )
    return Recorded(reading, created=True)


def get_for_reader_or_raise(session: Session, *, principal: Principal, reading_id: int) -> Reading:
    """A midwife reads her unit's readings; a machine reads back what it posted. Audited."""
    statement = select(Reading).where(Reading.id == reading_id)
    if principal.is_client:
        statement = statement.where(Reading.api_client_id == principal.id)
    else:
        statement = statement.join(Pregnancy, Pregnancy.id == Reading.pregnancy_id).where(
            Pregnancy.unit_id == principal.organisation_id
        )
    reading = session.scalars(statement).one_or_none()
    if reading is None:
        audit.record_denied(
            session,
            actor=principal,
            action=audit.Action.read,
            reason="not_found",
            record_type=RECORD_TYPE,
            record_id=reading_id,
        )
        raise NotFound(f"No reading {reading_id} is visible to you.")
    audit.record(
        session,
        actor=principal,
        action=audit.Action.read,
        record_type=RECORD_TYPE,
        record_id=reading.id,
        subject_pregnancy_id=reading.pregnancy_id,
    )
    return reading


def to_read(session: Session, reading: Reading) -> ReadingRead:
    contact = session.get(Contact, reading.contact_id) if reading.contact_id else None
    pregnancy = session.get(Pregnancy, reading.pregnancy_id)
    assert pregnancy is not None
    referral = session.get(Referral, reading.referral_id) if reading.referral_id else None
    return answer(
        reading,
        contact=contact.kind if contact else None,
        gestation_days=pregnancies.gestation_days(pregnancy, local_date(reading.measured_at)),
        referral=ReferralSummary(id=referral.id, status=referral.status, reasons=referral.reasons)
        if referral
        else None,
        calibration_warning=_calibration_warning(session, reading),
    )


class Stored(Protocol):
    """What the answer reads of a stored reading: a ``Reading``, or the same values without the
    ORM (``app.readings.combined_rows``)."""

    @property
    def id(self) -> int: ...
    @property
    def pregnancy_id(self) -> int: ...
    @property
    def measured_at(self) -> dt.datetime: ...
    @property
    def outcome(self) -> str: ...
    @property
    def co_ppm(self) -> int | None: ...
    @property
    def smoking_status(self) -> str: ...
    @property
    def stopped_smoking_on(self) -> dt.date | None: ...
    @property
    def very_brief_advice_given(self) -> bool | None: ...
    @property
    def device_serial(self) -> str | None: ...
    @property
    def source_id(self) -> str | None: ...
    @property
    def advice(self) -> list[dict[str, Any]]: ...


def answer(
    reading: Stored,
    *,
    contact: str | None,
    gestation_days: int,
    referral: ReferralSummary | None,
    calibration_warning: str | None,
) -> ReadingRead:
    """The answer about a recorded reading, whichever path recorded it."""
    return ReadingRead(
        id=reading.id,
        pregnancy_id=reading.pregnancy_id,
        contact=contact,
        gestation_days=gestation_days,
        measured_at=reading.measured_at,
        outcome=reading.outcome,
        co_ppm=reading.co_ppm,
        smoking_status=reading.smoking_status,
        stopped_smoking_on=reading.stopped_smoking_on,
        very_brief_advice_given=reading.very_brief_advice_given,
        device_serial=reading.device_serial,
        source_id=reading.source_id,
        referral=referral,
        advice=[AdviceRead(**item) for item in reading.advice],
        calibration_warning=calibration_warning,
    )


def _calibration_warning(session: Session, reading: Reading) -> str | None:
    if reading.device_serial is None:
        return None
    monitor = session.scalars(
        select(Monitor).where(Monitor.serial == reading.device_serial)
    ).first()
    due = monitor.calibration_due_on if monitor else None
    return monitors.calibration_warning(due, local_date(reading.measured_at))
