"""``POST /api/v1/readings`` on PostgreSQL in three statements, for the requests most senders make.

``app.readings.service.record`` records a test for every sender, database and case, through the
ORM: a reading that registers a woman and refers her sends 15 statements, and the ORM's
bookkeeping around them costs several times what PostgreSQL spends. This path writes the same
rows, decided by the same functions (the checks, the contact's derivation, the rules, the
routing, the audit rows, the outbox payload, the measures' marks), in:

1. the API key and its organisation, taking the advisory locks every path takes for the woman
   and the sender's ``source_id`` (``service.lock_statement``'s keys);
2. one lookup: a re-send, her current pregnancy with its contacts, referrals and latest test,
   the monitor's calibration date, the service a new referral goes to, and the new rows' ids;
3. one ``INSERT`` of every row through data-modifying CTEs (``app.sql_batch``), with the
   ``pg_notify`` that wakes the relay.

A reading for a pregnancy already recorded takes one statement more, for the ids and routing that
depend on what the lookup found. It runs on psycopg's async connections from a pool of its own
(``PooledTransactions``), so a request costs no thread, and none of SQLAlchemy's machinery.

It serves a request only when it can answer exactly as the general path would, and *declines*
(before writing anything, its transaction rolled back) otherwise: no API key (a person's session,
an OAuth access token), an ``Idempotency-Key``, a monitor result by id, a body or a key the general
path would refuse, a re-send, a change to her details, a referral already open, a contact already
recorded on another day, a referring test dated before her latest one, a unit with no service to
refer to, or a database error before the commit (a connection the database dropped). The general
path then answers as it always does, with its errors and audit. An error during the commit is the
general path's 503: the reading may or may not be stored, and a re-send with its ``source_id`` is
never recorded twice. ``EXHALE_FAST_READINGS=false`` turns this path off.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from fastapi import Request, Response
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from app import sql_batch
from app.api.auth import rate_limit
from app.audit import service as audit
from app.audit.models import AuditEvent
from app.clock import local_date
from app.config import Settings
from app.db import utcnow
from app.errors import ExhaleError
from app.identity import service as identity
from app.identity.principal import ActorType, Principal
from app.logs import get_logger
from app.measures.models import MeasureMark
from app.measures.rollup import marks_for_new_reading
from app.monitors import service as monitors
from app.oauth import service as oauth
from app.pregnancies import service as pregnancies
from app.pregnancies.models import Contact, ContactKind, Pregnancy
from app.readings import service
from app.readings.models import Reading
from app.readings.schemas import AdviceRead, ReadingCreate, ReadingRead, ReferralSummary
from referral import rules
from referral import service as referrals
from referral.delivery.service import NOTIFY_CHANNEL
from referral.delivery.webhooks import envelope, new_webhook_id, referral_data
from referral.lifecycle import CLOSED_STATUSES, ReferralStatus
from referral.models import OutboxMessage, OutboxStatus, Referral, ReferralEvent

log = get_logger(__name__)
ROLES = frozenset({"epr", "bridge", "midwife"})


class Executor(Protocol):
    async def one(self, sql: str, parameters: Mapping[str, Any]) -> Any:
        """Run ``sql`` (psycopg's ``%(name)s`` parameters); its first row, by attribute."""


# A transaction: a pooled psycopg connection in production; the tests' own connection in theirs.
Transactions = Callable[[], AbstractAsyncContextManager[Executor]]


class _Cursor:
    def __init__(self, cursor: psycopg.AsyncCursor[Any]) -> None:
        self.cursor = cursor

    async def one(self, sql: str, parameters: Mapping[str, Any]) -> Any:
        await self.cursor.execute(sql, parameters)
        return await self.cursor.fetchone()


class PooledTransactions:
    """Transactions on a pool of psycopg's async connections (at most 20 per web process)."""

    def __init__(self, database_url: str, *, connect_timeout_s: int, max_size: int = 20) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self.pool = AsyncConnectionPool(
            url.render_as_string(hide_password=False),
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=connect_timeout_s,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout_s},
        )

    async def open(self) -> None:
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Executor]:
        async with self.pool.connection() as connection, connection.transaction():
            yield _Cursor(connection.cursor(row_factory=namedtuple_row))


class Decline(Exception):
    """This request is for the general path; nothing has been written."""


# The API key, and the same advisory locks as service.lock_statement (the woman's, then the
# sender's source id), keyed by the key's unit and client: a statement fewer. A key that is not
# valid takes no lock, or takes them until its transaction is rolled back.
_CLIENT = (
    "SELECT api_client.id, api_client.name, api_client.role, api_client.organisation_id, "
    "api_client.revoked_at, api_client.secret_digest, organisation.kind, organisation.code, "
    "pg_advisory_xact_lock(api_client.organisation_id, %(woman)s) AS woman{source} "
    "FROM api_client JOIN organisation ON organisation.id = api_client.organisation_id "
    "WHERE api_client.secret_digest = %(digest)s"
)
_CLIENT_AND_LOCKS = {
    False: _CLIENT.format(source=""),
    True: _CLIENT.format(
        source=", pg_advisory_xact_lock(hashtextextended("
        f"'{ActorType.api_client.value}:' || api_client.id || ':' || %(source_id)s, 0)) AS source"
    ),
}


def _nextval(table: str) -> str:
    return f"nextval(pg_get_serial_sequence('{table}', 'id'))"


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
_NOTIFY = f"SELECT pg_notify('{NOTIFY_CHANNEL}', '') AS notified"
_NOTHING_MORE = "SELECT 1 AS written"


_POLICIES: dict[int, tuple[Settings, referrals.Policies]] = {}


def _policies(settings: Settings) -> referrals.Policies:
    """The referral policies of these settings, made once (a digest names their version)."""
    made = _POLICIES.get(id(settings))
    if made is None or made[0] is not settings:
        made = _POLICIES[id(settings)] = (settings, referrals.policies_from(settings))
    return made[1]


def _api_key(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or oauth.is_access_token(token):
        return None
    return token


def _body(parsed: Any) -> ReadingCreate | None:
    try:
        return ReadingCreate.model_validate(parsed)
    except ValidationError:
        return None


async def record(
    request: Request, parsed: Any, *, settings: Settings, transactions: Transactions
) -> Response | None:
    """The 201 answer, or None when the general path is to answer (see the module's docstring)."""
    api_key = _api_key(request)
    if api_key is None or request.headers.get("idempotency-key") is not None:
        return None
    body = _body(parsed)
    if body is None or body.device_reading_id is not None or body.measured_at is None:
        return None
    now = utcnow()
    try:
        nhs_number = service.check(body, settings, now)
    except ExhaleError:
        return None
    committing = False
    try:
        async with transactions() as db:
            answer = await _record(db, request, body, api_key, nhs_number, settings, now)
            committing = True
    except Decline:
        return None
    except (psycopg.Error, PoolTimeout, DBAPIError) as error:
        if committing:  # the reading may or may not be stored: the general path's 503
            raise OperationalError("COMMIT", None, error) from None
        # Nothing is stored: a connection the database dropped, say. The general path, which
        # checks its connection first, answers.
        log.warning("fast_reading_database_error", error_type=type(error).__name__)
        return None
    return Response(
        answer.model_dump_json(),
        status_code=201,
        media_type="application/json",
        headers={"Location": f"/api/v1/readings/{answer.id}"},
    )


async def _principal(
    db: Executor, request: Request, api_key: str, nhs_number: str, source_id: str | None
) -> tuple[Principal, str]:
    """The API key's client, holding the locks for the woman and the source id."""
    digest = identity.digest(api_key)
    client = await db.one(
        _CLIENT_AND_LOCKS[source_id is not None],
        {
            "digest": digest,
            "woman": service.woman_lock_key(nhs_number),
            "source_id": source_id,
        },
    )
    if (
        client is None
        or not hmac.compare_digest(client.secret_digest, digest)
        or client.revoked_at is not None
        or client.role not in ROLES
    ):
        raise Decline
    principal = Principal(
        actor_type=ActorType.api_client,
        id=client.id,
        name=client.name,
        role=client.role,
        organisation_id=client.organisation_id,
        organisation_kind=client.kind,
    )
    rate_limit(request, principal)  # counted once: the general path does not count it again
    return principal, client.code


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


async def _record(
    db: Executor,
    request: Request,
    body: ReadingCreate,
    api_key: str,
    nhs_number: str,
    settings: Settings,
    now: dt.datetime,
) -> ReadingRead:
    principal, unit_code = await _principal(db, request, api_key, nhs_number, body.source_id)
    assert principal.organisation_id is not None and body.measured_at is not None
    on = local_date(body.measured_at)
    policy = _policies(settings)
    details = _details(body)
    # For a woman not yet registered the rules see no history: decided before the lookup, so
    # that it takes a referral id only when one is needed.
    first = rules.evaluate(_facts(body, on, (), False), policy.rules)
    found = await db.one(
        _LOOKUP,
        {
            "unit": principal.organisation_id,
            "nhs": nhs_number,
            "on": on,
            "postnatal_days": settings.postnatal_days,
            "client": principal.id,
            "source_id": body.source_id,
            "serial": body.device_serial,
            "district": referrals.postcode_district(details.get("postcode")),
            "refers": first.refer,
        },
    )
    if found.resent is not None:
        raise Decline
    posted = _Posted(body, principal, unit_code, nhs_number, details, policy, now, on)
    if found.id is None:
        return await _register(db, posted, first, found)
    return await _add(db, posted, found)


@dataclass(frozen=True)
class _Posted:
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
class _Plan:
    """What the reading writes, once the lookup has been read."""

    pregnancy: _Her
    registered: bool
    kind: ContactKind
    contact_id: int | None  # an existing contact that day, else one is added
    decision: rules.Decision
    calibration_due: dt.date | None
    rows: list[sql_batch.Row] = field(default_factory=list)


@dataclass(frozen=True)
class _ContactDay:
    kind: str
    occurred_on: dt.date


@dataclass(frozen=True)
class _Her:
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
    contacts: tuple[_ContactDay, ...] = ()


@dataclass(frozen=True)
class _Referral:
    id: int
    service_id: int
    status: str
    reasons: list[str]
    opened_at: dt.datetime
    first_contact_due_at: dt.datetime | None
    closed_at: dt.datetime | None = None


@dataclass(frozen=True)
class _Tested:
    id: int
    co_ppm: int | None
    outcome: str
    measured_at: dt.datetime
    smoking_status: str


def _contact_kind(pregnancy: _Her, r: _Posted) -> ContactKind:
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


async def _register(db: Executor, r: _Posted, decision: rules.Decision, found: Any) -> ReadingRead:
    """A reading that registers her pregnancy."""
    if r.details.get("estimated_due_date") is None:
        raise Decline
    values = {n: r.details[n] for n in pregnancies.DETAIL_FIELDS if r.details.get(n) is not None}
    values.update(
        id=found.new_pregnancy, unit_id=r.principal.organisation_id, nhs_number=r.nhs_number
    )
    pregnancy = _Her(**values)
    plan = _Plan(
        pregnancy, True, _contact_kind(pregnancy, r), None, decision, found.calibration_due
    )
    plan.rows.append((Pregnancy, values))
    return await _write(db, r, plan, found)


async def _add(db: Executor, r: _Posted, found: Any) -> ReadingRead:
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
    pregnancy = _Her(
        id=found.id,
        unit_id=r.principal.organisation_id,
        nhs_number=r.nhs_number,
        contacts=tuple(_ContactDay(kind=k.value, occurred_on=d) for k, d, _ in contacts),
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
    ids = await db.one(
        _IDS,
        {
            "unit": r.principal.organisation_id,
            "district": referrals.postcode_district(pregnancy.postcode),
            "contact": contact_id is None,
            "refers": decision.refer,
        },
    )
    plan = _Plan(pregnancy, False, kind, contact_id, decision, found.calibration_due)
    # Her pregnancy, read to record against (pregnancies.get_for_reader_or_raise audits it).
    plan.rows += [
        (AuditEvent, row)
        for row in audit.allowed_rows(
            actor=r.principal,
            action=audit.Action.read,
            records=[(pregnancies.RECORD_TYPE, pregnancy.id, pregnancy.id)],
        )
    ]
    return await _write(db, r, plan, ids)


async def _write(db: Executor, r: _Posted, plan: _Plan, ids: Any) -> ReadingRead:
    """Every row in one statement, then the answer ``service.to_read`` would give."""
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
        if ids.service_id is None:
            raise Decline  # no service to refer to: the general path's 409 says who sets one
        referral = _Referral(
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
    if referral is not None:
        tested = _Tested(
            id=reading_values["id"],
            co_ppm=body.co_ppm,
            outcome=body.outcome.value,
            measured_at=body.measured_at,
            smoking_status=body.smoking_status.value,
        )
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
    await db.one(statement, parameters)
    return ReadingRead(
        id=reading_values["id"],
        pregnancy_id=pregnancy.id,
        contact=plan.kind.value,
        gestation_days=pregnancies.gestation_days(pregnancy, r.on),
        measured_at=body.measured_at,
        outcome=body.outcome.value,
        co_ppm=body.co_ppm,
        smoking_status=body.smoking_status.value,
        stopped_smoking_on=body.stopped_smoking_on,
        very_brief_advice_given=body.very_brief_advice_given,
        device_serial=body.device_serial,
        source_id=body.source_id,
        referral=ReferralSummary(id=referral.id, status=referral.status, reasons=reasons)
        if referral is not None
        else None,
        advice=[AdviceRead(**item) for item in reading_values["advice"]],
        calibration_warning=monitors.calibration_warning(plan.calibration_due, r.on)
        if body.device_serial is not None
        else None,
    )


def _referral_messages(
    r: _Posted, plan: _Plan, referral: _Referral, reading: _Tested, ids: Any
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
