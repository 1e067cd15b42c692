"""A reading's rows written in a few PostgreSQL statements, decided as the general path decides.

``app.readings.service.record`` records a test for every sender, database and case through the
ORM: a reading that registers a woman and refers her sends 15 statements, and the ORM's
bookkeeping around them costs several times what PostgreSQL spends. ``Recording`` here writes
the same rows, decided by the same functions (the contact's derivation and checks, the rules, the
routing, the audit rows, the outbox payload, the measures' marks), once the caller holds the
locks every path takes (``service.lock_statement``'s keys; ``app.api.fast_readings`` takes them
with the API key), in:

1. one lookup (``Recording.lookup``, which the caller may send in the round trip that takes the
   locks): a re-send, her current pregnancy with its contacts, referrals and latest test, the
   monitor's calibration date, the service a new referral goes to, and the new rows' ids;
2. for a pregnancy already recorded, the ids and routing that depend on what the lookup found;
3. one ``INSERT`` of every row through data-modifying CTEs (``app.sql_batch``), with the
   ``pg_notify`` that wakes the relay, sent with the commit.

Whatever it cannot write exactly as the general path would, it declines (``Decline``) before
writing anything: a re-send, a change to her details, a referral already open, a contact already
recorded on another day, a referring test dated before her latest one, a unit with no service to
refer to, or anything the general path would refuse. The caller then rolls back and leaves the
request to the general path. The decision functions read plain values through protocols
(``pregnancies.service.Dated``, ``webhooks.ReferralFacts``): no ORM object is built.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from app.audit import service as audit
from app.audit.models import AuditEvent
from app.clock import local_date
from app.config import Settings
from app.errors import ExhaleError
from app.identity.principal import Principal
from app.pregnancies import service as pregnancies
from app.pregnancies.models import ContactKind, Pregnancy
from app.readings import combined_rows as rows
from app.readings.schemas import ReadingCreate, ReadingRead
from referral import rules
from referral import service as referrals
from referral.lifecycle import CLOSED_STATUSES

# SQL with psycopg's ``%(name)s`` parameters, and their values.
Statement = tuple[str, Mapping[str, Any]]


class Executor(Protocol):
    async def run(self, *statements: Statement, commit: bool = False) -> list[Any]:
        """The statements in one round trip, in this transaction (the first begins it): the
        first row of each, by attribute. With ``commit``, the transaction commits in that round
        trip too."""


class Decline(Exception):
    """This request is for the general path; nothing has been written."""


def _nextval(table: str) -> str:
    return f"nextval('{table}_id_seq'::regclass)"


# The service a new referral goes to: by a service area for her postcode district at her unit,
# else the unit's default (as referral.service.route).
_SERVICE = (
    "SELECT id, code FROM organisation WHERE id = coalesce((SELECT service_id FROM service_area "
    "WHERE unit_id = %(unit)s AND postcode_district = %(district)s), (SELECT default_service_id "
    "FROM organisation WHERE id = %(unit)s))"
)
# Her current pregnancy at the unit, as pregnancies.find_current chooses it.
_CURRENT = (
    "SELECT id, estimated_due_date, born_on, given_name, family_name, date_of_birth, phone, "
    "postcode FROM pregnancy WHERE unit_id = %(unit)s AND nhs_number = %(nhs)s "
    f"AND estimated_due_date - {pregnancies.FULL_TERM_DAYS} <= %(on)s AND %(on)s <= CASE WHEN "
    f"born_on IS NULL THEN estimated_due_date + {pregnancies.ENDS_AFTER_DUE_DAYS} ELSE born_on + "
    "CAST(%(postnatal_days)s AS integer) END ORDER BY estimated_due_date DESC, id DESC LIMIT 1"
)
_LOOKUP = (
    f"WITH cur AS ({_CURRENT}), svc AS ({_SERVICE}) SELECT "
    "(SELECT id FROM co_reading WHERE api_client_id = %(client)s AND source_id = "
    "%(source_id)s) AS resent, cur.*, "
    "(SELECT json_agg(json_build_array(kind, occurred_on, id) ORDER BY occurred_on, id) "
    "FROM contact WHERE pregnancy_id = cur.id) AS contacts, "
    "(SELECT json_agg(json_build_array(status, closed_at IS NULL) ORDER BY id) FROM referral "
    "WHERE pregnancy_id = cur.id) AS referrals, "
    "(SELECT max(measured_at) FROM co_reading WHERE pregnancy_id = cur.id) AS latest_at, "
    "(SELECT calibration_due_on FROM monitor WHERE serial = %(serial)s LIMIT 1) "
    "AS calibration_due, "
    f"CASE WHEN cur.id IS NULL THEN {_nextval('pregnancy')} END AS new_pregnancy, "
    f"CASE WHEN cur.id IS NULL THEN {_nextval('contact')} END AS new_contact, "
    f"CASE WHEN cur.id IS NULL THEN {_nextval('co_reading')} END AS new_reading, "
    f"CASE WHEN cur.id IS NULL AND %(refers)s THEN {_nextval('referral')} END AS new_referral, "
    "svc.id AS service_id, svc.code AS service_code "
    "FROM (SELECT 1) AS one LEFT JOIN cur ON true LEFT JOIN svc ON true"
)
# For a pregnancy already recorded: the ids of the rows the reading adds, and the service.
_IDS = (
    f"WITH svc AS ({_SERVICE}) SELECT {_nextval('co_reading')} AS new_reading, "
    f"CASE WHEN %(contact)s THEN {_nextval('contact')} END AS new_contact, "
    f"CASE WHEN %(refers)s THEN {_nextval('referral')} END AS new_referral, "
    "svc.id AS service_id, svc.code AS service_code FROM (SELECT 1) AS one LEFT JOIN svc ON true"
)


_POLICIES: dict[int, tuple[Settings, referrals.Policies]] = {}


def _policies(settings: Settings) -> referrals.Policies:
    """The referral policies of these settings, made once (a digest names their version)."""
    made = _POLICIES.get(id(settings))
    if made is None or made[0] is not settings:
        made = _POLICIES[id(settings)] = (settings, referrals.policies_from(settings))
    return made[1]


def _details(body: ReadingCreate) -> dict[str, Any]:
    return body.pregnancy.model_dump(exclude_unset=True) if body.pregnancy else {}


def _facts(
    body: ReadingCreate, on: dt.date, closed: tuple[str, ...], open_: bool
) -> rules.ReadingFacts:
    return rules.ReadingFacts(
        outcome=rules.ReadingOutcome(body.outcome.value),
        smoking_status=rules.SmokingStatus(body.smoking_status.value),
        tested_on=on,
        co_ppm=body.co_ppm,
        stopped_smoking_on=body.stopped_smoking_on,
        earlier_referral_outcomes=closed,
        has_open_referral=open_,
    )


class Recording:
    """One reading to record for a sender's unit: its lookup, then its rows."""

    def __init__(
        self,
        *,
        unit_id: int,
        client_id: int,
        body: ReadingCreate,
        nhs_number: str,
        settings: Settings,
        now: dt.datetime,
    ) -> None:
        """``body`` has passed ``service.check``, which gave ``nhs_number``."""
        assert body.measured_at is not None
        self.sender = (unit_id, client_id)
        self.body, self.nhs_number, self.now = body, nhs_number, now
        self.on = local_date(body.measured_at)
        self.policy = _policies(settings)
        self.details = _details(body)
        # For a woman not yet registered the rules see no history: decided before the lookup,
        # so that it takes a referral id only when one is needed.
        self.first = rules.evaluate(_facts(body, self.on, (), False), self.policy.rules)
        self.lookup: Statement = (
            _LOOKUP,
            {
                "unit": unit_id,
                "nhs": nhs_number,
                "on": self.on,
                "postnatal_days": settings.postnatal_days,
                "client": client_id,
                "source_id": body.source_id,
                "serial": body.device_serial,
                "district": referrals.postcode_district(self.details.get("postcode")),
                "refers": self.first.refer,
            },
        )

    async def write(
        self, db: Executor, found: Any, *, principal: Principal, unit_code: str
    ) -> ReadingRead:
        """Write the reading, ``found`` by ``lookup`` for ``principal``'s unit, and answer as
        ``service.to_read`` would; or raise ``Decline``. The caller holds the locks for her and
        the source id in the transaction ``db`` runs in, and commits with the rows."""
        if (principal.organisation_id, principal.id) != self.sender:
            raise Decline  # looked up for another unit or client: what it found is not hers
        if found.resent is not None:
            raise Decline
        posted = rows.Posted(
            self.body,
            principal,
            unit_code,
            self.nhs_number,
            self.details,
            self.policy,
            self.now,
            self.on,
        )
        if found.id is None:
            return await _register(db, posted, self.first, found)
        return await _add(db, posted, found)


def _contact_kind(pregnancy: rows.Her, r: rows.Posted) -> ContactKind:
    """The contact as ``service._contact_for`` decides it; Decline where it would refuse."""
    on = r.on
    if on < pregnancies.starts_on(pregnancy) or (
        pregnancy.born_on is None and on > pregnancies.antenatal_ends_on(pregnancy)
    ):
        raise Decline
    kind = ContactKind(r.body.contact or pregnancies.derive_contact_kind(pregnancy, on))
    try:
        pregnancies.check_contact_fits(pregnancy, kind, on)
    except ExhaleError:
        raise Decline from None
    return kind


async def _register(
    db: Executor, r: rows.Posted, decision: rules.Decision, found: Any
) -> ReadingRead:
    """A reading that registers her pregnancy."""
    if r.details.get("estimated_due_date") is None:
        raise Decline
    values = {n: r.details[n] for n in pregnancies.DETAIL_FIELDS if r.details.get(n) is not None}
    values.update(
        id=found.new_pregnancy, unit_id=r.principal.organisation_id, nhs_number=r.nhs_number
    )
    pregnancy = rows.Her(**values)
    plan = rows.Plan(
        pregnancy, True, _contact_kind(pregnancy, r), None, decision, found.calibration_due
    )
    plan.rows.append((Pregnancy, values))
    return await _write(db, plan, r, found)


async def _add(db: Executor, r: rows.Posted, found: Any) -> ReadingRead:
    """A reading for her current pregnancy."""
    assert r.body.measured_at is not None
    stored = {n: getattr(found, n) for n in (*pregnancies.DETAIL_FIELDS, "born_on")}
    if any(stored[n] != v for n, v in r.details.items() if n in pregnancies.DETAIL_FIELDS):
        raise Decline  # a change to her details: the general path applies and audits it
    contacts = [
        (ContactKind(kind), dt.date.fromisoformat(day), contact_id)
        for kind, day, contact_id in found.contacts or []
    ]
    assert r.principal.organisation_id is not None
    pregnancy = rows.Her(
        id=found.id,
        unit_id=r.principal.organisation_id,
        nhs_number=r.nhs_number,
        contacts=tuple(rows.ContactDay(kind=k.value, occurred_on=d) for k, d, _ in contacts),
        **stored,
    )
    kind = _contact_kind(pregnancy, r)
    contact_id = None
    for existing_kind, day, existing_id in contacts:
        if existing_kind is kind and day == r.on:
            contact_id = existing_id
            break
        if existing_kind is kind and kind in (ContactKind.booking, ContactKind.weeks_36):
            raise Decline  # already recorded on another day: the general path's 409
    history = found.referrals or []
    closed = tuple(status for status, _ in history if status in CLOSED_STATUSES)
    has_open = any(is_open for _, is_open in history)
    decision = rules.evaluate(_facts(r.body, r.on, closed, has_open), r.policy.rules)
    if decision.refer and (
        has_open or (found.latest_at or r.body.measured_at) > r.body.measured_at
    ):
        # Reasons added to her open referral; or an earlier test is the message's latest.
        raise Decline
    [ids] = await db.run(
        (
            _IDS,
            {
                "unit": r.principal.organisation_id,
                "district": referrals.postcode_district(pregnancy.postcode),
                "contact": contact_id is None,
                "refers": decision.refer,
            },
        )
    )
    plan = rows.Plan(pregnancy, False, kind, contact_id, decision, found.calibration_due)
    # Her pregnancy, read to record against (pregnancies.get_for_reader_or_raise audits it).
    plan.rows += [
        (AuditEvent, row)
        for row in audit.allowed_rows(
            actor=r.principal,
            action=audit.Action.read,
            records=[(pregnancies.RECORD_TYPE, pregnancy.id, pregnancy.id)],
        )
    ]
    return await _write(db, plan, r, ids)


async def _write(db: Executor, plan: rows.Plan, r: rows.Posted, ids: Any) -> ReadingRead:
    if plan.decision.refer and ids.service_id is None:
        raise Decline  # no service to refer to: the general path's 409 says who sets one
    statement, parameters, answer = rows.written(r, plan, ids)
    await db.run((statement, parameters), commit=True)
    return answer
