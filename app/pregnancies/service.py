"""Finding and reading pregnancies, scoped to the caller's maternity unit and audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.clock import long_date
from app.errors import Conflict, FieldError, InvalidInput, NotFound
from app.identity.principal import Principal
from app.pregnancies.models import Contact, ContactKind, PostnatalStatus, Pregnancy

RECORD_TYPE = "pregnancy"


def _audit(
    session: Session,
    principal: Principal,
    action: str,
    pregnancy: Pregnancy,
    detail: dict[str, object] | None = None,
) -> None:
    audit.record(
        session,
        actor=principal,
        action=action,
        record_type=RECORD_TYPE,
        record_id=pregnancy.id,
        subject_pregnancy_id=pregnancy.id,
        detail=detail,
    )


def get_for_reader_or_raise(
    session: Session, *, principal: Principal, pregnancy_id: int, action: str = audit.Action.read
) -> Pregnancy:
    """The pregnancy if it belongs to the caller's unit; otherwise 404, and the attempt audited."""
    pregnancy = session.scalars(
        select(Pregnancy).where(
            Pregnancy.id == pregnancy_id, Pregnancy.unit_id == principal.organisation_id
        )
    ).one_or_none()
    if pregnancy is None:
        audit.record_denied(
            session,
            actor=principal,
            action=action,
            reason="not_found",
            record_type=RECORD_TYPE,
            record_id=pregnancy_id,
        )
        raise NotFound(f"No pregnancy {pregnancy_id} is recorded at your unit.")
    _audit(session, principal, action, pregnancy)
    return pregnancy


def search_by_nhs_number(
    session: Session, *, principal: Principal, nhs_number: str
) -> list[Pregnancy]:
    """The unit's pregnancies for this NHS number, newest due date first; each one audited."""
    found = list(
        session.scalars(
            select(Pregnancy)
            .where(
                Pregnancy.nhs_number == nhs_number,
                Pregnancy.unit_id == principal.organisation_id,
            )
            .order_by(Pregnancy.estimated_due_date.desc(), Pregnancy.id.desc())
        )
    )
    for pregnancy in found:
        _audit(session, principal, audit.Action.search, pregnancy)
    return found


def ids_for_nhs_number(session: Session, nhs_number: str) -> list[int]:
    """Every pregnancy with this NHS number at any unit (for administrators' audit queries)."""
    return list(session.scalars(select(Pregnancy.id).where(Pregnancy.nhs_number == nhs_number)))


# --- the pregnancy a reading belongs to ---------------------------------------------------------

FULL_TERM_DAYS = 280
ENDS_AFTER_DUE_DAYS = 28  # 44 weeks' gestation with no birth recorded: the pregnancy has ended
THIRTY_SIX_WEEK_WINDOW = range(245, 266)  # 35+0 to 37+6: the 36-week appointment
# A test stated as the 36-week appointment's: a week's leeway either side of that window. Outside
# it the stated contact is a mistake, and would count in the measures' "at 36 weeks".
STATED_36_WEEK_WINDOW = range(238, 273)  # 34+0 to 38+6


class ContactDay(Protocol):
    """What the dating rules read of a contact: a ``Contact``, or the same facts without the ORM."""

    @property
    def kind(self) -> str: ...

    @property
    def occurred_on(self) -> dt.date: ...


class Dated(Protocol):
    """What the dating rules read of a pregnancy: a ``Pregnancy``, or the same facts without the
    ORM (``app.readings.combined``)."""

    @property
    def id(self) -> int: ...

    @property
    def estimated_due_date(self) -> dt.date: ...

    @property
    def born_on(self) -> dt.date | None: ...

    @property
    def contacts(self) -> Sequence[ContactDay]: ...


def starts_on(pregnancy: Dated) -> dt.date:
    return pregnancy.estimated_due_date - dt.timedelta(days=FULL_TERM_DAYS)


def antenatal_ends_on(pregnancy: Dated) -> dt.date:
    """The birth, or 44 weeks' gestation when no birth is recorded."""
    if pregnancy.born_on is not None:
        return pregnancy.born_on
    return pregnancy.estimated_due_date + dt.timedelta(days=ENDS_AFTER_DUE_DAYS)


def gestation_days(pregnancy: Dated, on: dt.date) -> int:
    """280 days minus the days from ``on`` to the due date (standard obstetric dating)."""
    return FULL_TERM_DAYS - (pregnancy.estimated_due_date - on).days


# Built once (building a statement costs more than SQLAlchemy's cached compile of it).
_WOMANS_PREGNANCIES = (
    select(Pregnancy)
    .where(
        Pregnancy.unit_id == bindparam("unit_id"), Pregnancy.nhs_number == bindparam("nhs_number")
    )
    .order_by(Pregnancy.estimated_due_date.desc(), Pregnancy.id.desc())
)


def find_current(
    session: Session, *, unit_id: int, nhs_number: str, on: dt.date, postnatal_days: int
) -> Pregnancy | None:
    """The unit's pregnancy for this woman that ``on`` falls in.

    A pregnancy runs from 280 days before its due date to the birth (then on for
    ``postnatal_days`` of postnatal care), or to 44 weeks' gestation when no birth is recorded;
    a test after that belongs to a new pregnancy.
    """
    candidates = session.scalars(
        _WOMANS_PREGNANCIES, {"unit_id": unit_id, "nhs_number": nhs_number}
    )
    for pregnancy in candidates:
        end = antenatal_ends_on(pregnancy)
        if pregnancy.born_on is not None:
            end += dt.timedelta(days=postnatal_days)
        if starts_on(pregnancy) <= on <= end:
            return pregnancy
    return None


def derive_contact_kind(pregnancy: Dated, on: dt.date) -> ContactKind:
    """The appointment a test without a stated contact belongs to.

    1. On or after a recorded birth: postnatal.
    2. A contact already recorded that day: the same appointment.
    3. No booking yet: booking.
    4. At 35+0 to 37+6 weeks with no 36-week contact yet: 36_weeks.
    5. Otherwise: antenatal.
    """
    if pregnancy.born_on is not None and on >= pregnancy.born_on:
        return ContactKind.postnatal
    kinds = {contact.kind for contact in pregnancy.contacts}
    for contact in pregnancy.contacts:
        if contact.occurred_on == on:
            return ContactKind(contact.kind)
    if ContactKind.booking not in kinds:
        return ContactKind.booking
    if (
        gestation_days(pregnancy, on) in THIRTY_SIX_WEEK_WINDOW
        and ContactKind.weeks_36 not in kinds
    ):
        return ContactKind.weeks_36
    return ContactKind.antenatal


def check_contact_fits(pregnancy: Dated, kind: ContactKind, on: dt.date) -> None:
    if kind is ContactKind.weeks_36:
        days = gestation_days(pregnancy, on)
        if days not in STATED_36_WEEK_WINDOW:
            raise InvalidInput(
                "Check contact.",
                fields=[
                    FieldError(
                        "contact",
                        f"36_weeks is for a test at 34+0 to 38+6 weeks, and this one is at "
                        f"{days // 7}+{days % 7}: choose antenatal, or check the due date",
                    )
                ],
            )
    if kind is ContactKind.postnatal:
        if pregnancy.born_on is None:
            raise InvalidInput(
                "Check contact: postnatal needs the birth recorded first "
                f"(POST /api/v1/pregnancies/{pregnancy.id}/birth).",
                fields=[
                    FieldError(
                        "contact",
                        "postnatal needs the birth recorded first: "
                        "record the birth on her pregnancy page",
                    )
                ],
            )
        if on < pregnancy.born_on:
            raise InvalidInput(
                "Check contact.",
                fields=[FieldError("contact", "a postnatal test cannot be before the birth")],
            )
    elif pregnancy.born_on is not None and on > pregnancy.born_on:
        raise InvalidInput(
            "Check contact.",
            fields=[FieldError("contact", f"{kind.value} is before the birth; use postnatal")],
        )


def get_or_create_contact(
    session: Session, *, pregnancy: Pregnancy, kind: ContactKind, on: dt.date
) -> Contact:
    for contact in pregnancy.contacts:
        if contact.kind == kind and contact.occurred_on == on:
            return contact
        if contact.kind == kind and kind in (ContactKind.booking, ContactKind.weeks_36):
            raise Conflict(
                f"This pregnancy's {kind.value} contact is already recorded on another day; "
                "send contact antenatal for a later test, or correct the date.",
                fields=[FieldError("contact", f"{kind.value} is already recorded")],
            )
    contact = Contact(
        pregnancy=pregnancy,
        kind=kind.value,
        occurred_on=on,
        gestation_days=gestation_days(pregnancy, on),
    )
    session.add(contact)  # flushed by the caller, with whatever else it writes
    return contact


# --- creating and changing a pregnancy ----------------------------------------------------------

DETAIL_FIELDS = (
    "estimated_due_date",
    "given_name",
    "family_name",
    "date_of_birth",
    "phone",
    "postcode",
)


def new(
    session: Session, *, unit_id: int, nhs_number: str, details: dict[str, object]
) -> Pregnancy:
    """A pregnancy added to the session, not yet flushed nor audited: ``create`` does both."""
    # A new pregnancy has no contacts: saying so saves loading the empty list from the database.
    pregnancy = Pregnancy(unit_id=unit_id, nhs_number=nhs_number, contacts=[])
    for name in DETAIL_FIELDS:
        if details.get(name) is not None:
            setattr(pregnancy, name, details[name])
    session.add(pregnancy)
    return pregnancy


def create(
    session: Session,
    *,
    principal: Principal,
    unit_id: int,
    nhs_number: str,
    details: dict[str, object],
) -> Pregnancy:
    pregnancy = new(session, unit_id=unit_id, nhs_number=nhs_number, details=details)
    session.flush()
    _audit(session, principal, audit.Action.create, pregnancy)
    return pregnancy


def _due_date_refused(message: str) -> InvalidInput:
    return InvalidInput(
        "Check estimated_due_date.", fields=[FieldError("estimated_due_date", message)]
    )


def _check_due_date_fits(pregnancy: Pregnancy, due: dt.date) -> None:
    """A new due date must keep what is recorded inside the pregnancy it dates: every test on or
    after its start (280 days before), antenatal tests by 44 weeks, and the birth at 22 weeks or
    later."""
    start = due - dt.timedelta(days=FULL_TERM_DAYS)
    antenatal_ends = pregnancy.born_on or due + dt.timedelta(days=ENDS_AFTER_DUE_DAYS)
    for contact in sorted(pregnancy.contacts, key=lambda c: c.occurred_on):
        on = contact.occurred_on
        if on < start or (contact.kind != ContactKind.postnatal and on > antenatal_ends):
            raise _due_date_refused(
                f"would put her {contact.kind} test on {long_date(on)} outside this pregnancy "
                "(280 days before the due date to 44 weeks' gestation); check the date"
            )
    if pregnancy.born_on is not None and pregnancy.born_on < start + dt.timedelta(days=22 * 7):
        raise _due_date_refused("would put the recorded birth before 22 weeks; check the date")


def update(
    session: Session, *, principal: Principal, pregnancy: Pregnancy, changes: dict[str, object]
) -> list[str]:
    """Apply the given fields that differ; audit which fields changed (never their values).

    A new due date is checked against her recorded tests and birth, and her contacts' stored
    gestations follow it (a dating scan moves the due date; the tests' days stay)."""
    changed = []
    for name in DETAIL_FIELDS:
        if name in changes and getattr(pregnancy, name) != changes[name]:
            if name == "estimated_due_date":
                due = changes[name]
                if due is None:
                    raise _due_date_refused("cannot be removed, only changed")
                assert isinstance(due, dt.date)
                _check_due_date_fits(pregnancy, due)
            setattr(pregnancy, name, changes[name])
            changed.append(name)
    if "estimated_due_date" in changed:
        for contact in pregnancy.contacts:
            contact.gestation_days = gestation_days(pregnancy, contact.occurred_on)
    if changed:
        session.flush()
        _audit(session, principal, audit.Action.update, pregnancy, detail={"fields": changed})
    return changed


def record_birth(
    session: Session,
    *,
    principal: Principal,
    pregnancy: Pregnancy,
    born_on: dt.date,
    smoking_status_at_delivery: str,
    today: dt.date,
) -> None:
    if born_on > today:
        raise InvalidInput(
            "Check born_on.", fields=[FieldError("born_on", "cannot be in the future")]
        )
    if born_on < starts_on(pregnancy) + dt.timedelta(days=22 * 7):
        raise InvalidInput(
            "Check born_on.",
            fields=[
                FieldError(
                    "born_on",
                    "is before 22 weeks' gestation for this due date; "
                    "check the date or correct the due date first",
                )
            ],
        )
    later = [
        c for c in pregnancy.contacts if c.kind != ContactKind.postnatal and c.occurred_on > born_on
    ]
    if later:
        raise Conflict(
            "An antenatal test is recorded after that birth date; check the date.",
            fields=[FieldError("born_on", "is before a recorded antenatal contact")],
        )
    pregnancy.born_on = born_on
    pregnancy.smoking_status_at_delivery = smoking_status_at_delivery
    session.flush()
    _audit(
        session,
        principal,
        audit.Action.update,
        pregnancy,
        detail={"fields": ["born_on", "smoking_status_at_delivery"]},
    )


def record_postnatal_status(
    session: Session,
    *,
    principal: Principal,
    pregnancy: Pregnancy,
    recorded_on: dt.date,
    smoking_status: str,
    today: dt.date,
) -> PostnatalStatus:
    if pregnancy.born_on is None:
        raise Conflict(
            f"Record the birth first (POST /api/v1/pregnancies/{pregnancy.id}/birth).",
            fields=[
                FieldError(
                    "recorded_on",
                    "needs the birth recorded first: record the birth on her pregnancy page",
                )
            ],
        )
    if not pregnancy.born_on <= recorded_on <= today:
        raise InvalidInput(
            "Check recorded_on.",
            fields=[FieldError("recorded_on", "must be between the birth and today")],
        )
    status = session.scalars(
        select(PostnatalStatus).where(
            PostnatalStatus.pregnancy_id == pregnancy.id,
            PostnatalStatus.recorded_on == recorded_on,
        )
    ).one_or_none()
    if status is None:
        status = PostnatalStatus(pregnancy_id=pregnancy.id, recorded_on=recorded_on)
        session.add(status)
    status.smoking_status = smoking_status
    session.flush()
    audit.record(
        session,
        actor=principal,
        action=audit.Action.create,
        record_type="postnatal_status",
        record_id=status.id,
        subject_pregnancy_id=pregnancy.id,
    )
    return status
