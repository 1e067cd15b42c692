"""``POST /api/v1/readings`` on PostgreSQL, for the requests most senders make, in two round trips.

With an API key, the route tries this path before the general one (``app.readings.service``,
through the ORM): the API key's statement takes the locks every path takes, and
``app.readings.combined`` looks her up and writes the reading's rows. For a woman it registers,
that is two round trips: the transaction's start, the key with the locks, and the lookup; then
every row with the commit (``_Transaction``). It runs on psycopg's async connections from a pool
of its own (``PooledTransactions``), so a request costs no thread, and none of SQLAlchemy's
machinery.

It serves a request only when it can answer exactly as the general path would, and *declines*
(before writing anything, its transaction rolled back) otherwise: no API key (a person's
session, an OAuth access token), an ``Idempotency-Key``, a monitor result by id, a body or key
the general path would refuse, whatever ``combined`` declines, or a database error that stores
nothing (a connection the database dropped before the commit's round trip, or an error the server
reports in it, which ends the query before ``COMMIT``). The general path then answers as it
always does, with its errors and audit. A connection lost during the commit's round trip is the
general path's 503: the reading may or may not be stored, and a re-send with its ``source_id`` is
never recorded twice.
``EXHALE_FAST_READINGS=false`` turns this path off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import re
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import psycopg
from fastapi import Request, Response
from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError

from app.api.auth import rate_limit
from app.config import Settings
from app.db import libpq_conninfo, utcnow
from app.errors import ExhaleError
from app.identity import service as identity
from app.identity.principal import ActorType, Principal
from app.logs import get_logger
from app.oauth import service as oauth
from app.readings import combined, service
from app.readings.combined import Decline, Executor, Statement
from app.readings.schemas import ReadingCreate, ReadingRead

log = get_logger(__name__)
# Who may record a reading: the route requires the same roles.
ROLES = ("epr", "bridge", "midwife")

# A transaction: a pooled psycopg connection in production; the tests' own connection in theirs.
Transactions = Callable[[], AbstractAsyncContextManager[Executor]]


class OutcomeUnknown(Exception):
    """The connection failed while the transaction was committing: it may or may not have."""

    def __init__(self, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.error = error


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_TUPLES = psycopg.pq.ExecStatus.TUPLES_OK


class _Prepared:
    """A statement prepared on the server (``PREPARE``), run by ``EXECUTE`` with literals.

    Several go in one simple-protocol query, with the transaction's ``BEGIN`` or ``COMMIT``:
    a round trip, where psycopg's extended protocol takes one for each. ``execute(n)`` names
    its parameters ``sN_name``, so statements in one query never share one by chance.
    """

    def __init__(self, sql: str) -> None:
        # Named by its SQL: a name means the same statement in every process and version, on
        # whichever server connection it meets.
        self.name = f"exhale_fast_{hashlib.sha256(sql.encode()).hexdigest()[:24]}"
        self.parameters: list[str] = []

        def positional(match: re.Match[str]) -> str:
            if match.group(1) not in self.parameters:
                self.parameters.append(match.group(1))
            return f"${self.parameters.index(match.group(1)) + 1}"

        positional_sql = _PLACEHOLDER.sub(positional, sql.replace("%%", "%"))
        self.prepare = f"PREPARE {self.name} AS {positional_sql.replace('%', '%%')}"
        self._executes: dict[int, str] = {}

    def execute(self, n: int) -> str:
        text = self._executes.get(n)
        if text is None:
            arguments = ", ".join(f"%(s{n}_{name})s" for name in self.parameters)
            text = f"EXECUTE {self.name}({arguments})" if arguments else f"EXECUTE {self.name}"
            self._executes[n] = text
        return text


_STATEMENTS: dict[str, _Prepared] = {}
# The statements prepared on each pooled connection.
_PREPARED: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], set[str]] = (
    weakref.WeakKeyDictionary()
)


class _Transaction:
    """``combined.Executor`` on one pooled connection (autocommit: it sends BEGIN itself)."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection
        self.cursor = psycopg.AsyncClientCursor(connection, row_factory=namedtuple_row)
        self.prepared = _PREPARED.setdefault(connection, set())
        self.open = False

    async def run(self, *statements: Statement, commit: bool = False) -> list[Any]:
        query = [] if self.open else ["BEGIN"]
        values: dict[str, Any] = {}
        for n, (sql, parameters) in enumerate(statements):
            prepared = _STATEMENTS.get(sql)
            if prepared is None:
                prepared = _STATEMENTS.setdefault(sql, _Prepared(sql))
            if prepared.name not in self.prepared:
                query.append(prepared.prepare)
                self.prepared.add(prepared.name)  # a failed query closes the connection
            query.append(prepared.execute(n))
            values.update((f"s{n}_{k}", parameters[k]) for k in prepared.parameters)
        if commit:
            query.append("COMMIT")
        self.open = True
        try:
            await self.cursor.execute("; ".join(query), values)
        except psycopg.Error as error:
            # An error the server reported ends the query there: the transaction did not
            # commit. A connection lost on the way leaves a commit's outcome unknown.
            if commit and (error.sqlstate is None or self.connection.broken):
                raise OutcomeUnknown(error) from error
            raise
        self.open = not commit
        found = []
        while True:
            if self.cursor.pgresult is not None and self.cursor.pgresult.status == _TUPLES:
                found.append(await self.cursor.fetchone())
            if not self.cursor.nextset():
                return found


class PooledTransactions:
    """Transactions on a pool of psycopg's async connections (at most 20 per web process).

    A declined transaction is rolled back. After any other error the connection is closed, so
    that the pool replaces it and no connection is left with a transaction, or statements
    prepared, that this process does not know of.
    """

    def __init__(self, database_url: str, *, connect_timeout_s: int, max_size: int = 20) -> None:
        self.pool = AsyncConnectionPool(
            libpq_conninfo(database_url),
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
        async with self.pool.connection() as connection:
            transaction = _Transaction(connection)
            try:
                yield transaction
            except (psycopg.Error, OutcomeUnknown, asyncio.CancelledError):
                await connection.close()
                raise
            except Exception:  # Decline, or the sender's rate limit: nothing was written
                if transaction.open:
                    await _roll_back(connection)
                raise


async def _roll_back(connection: psycopg.AsyncConnection[Any]) -> None:
    try:
        await connection.execute("ROLLBACK")
    except psycopg.Error:
        await connection.close()


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
    digest = identity.digest(api_key)
    try:
        async with transactions() as db:
            answer = await _record(db, request, digest, body, nhs_number, settings, now)
    except Decline:
        return None
    except OutcomeUnknown as unknown:  # the reading may or may not be stored: the general 503
        raise OperationalError("COMMIT", None, unknown.error) from None
    except (psycopg.Error, PoolTimeout, DBAPIError) as error:
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


# The unit and client of each API key seen, to send the lookup with the key's statement. Only a
# guess: the key's own row, read in the same round trip, decides; a wrong guess costs a lookup.
_KEYS: dict[str, tuple[int, int]] = {}
_KEYS_KEPT = 1000


async def _record(
    db: Executor,
    request: Request,
    digest: str,
    body: ReadingCreate,
    nhs_number: str,
    settings: Settings,
    now: dt.datetime,
) -> ReadingRead:
    """The key's client, holding the locks for the woman and the source id; then the reading."""
    locks: Statement = (
        _CLIENT_AND_LOCKS[body.source_id is not None],
        {
            "digest": digest,
            "woman": service.woman_lock_key(nhs_number),
            "source_id": body.source_id,
        },
    )

    recording = partial(
        combined.Recording, body=body, nhs_number=nhs_number, settings=settings, now=now
    )
    guess = _KEYS.get(digest)
    if guess is None:
        [client] = await db.run(locks)
        found = None
    else:
        reading = recording(unit_id=guess[0], client_id=guess[1])
        client, found = await db.run(locks, reading.lookup)
    principal, unit_code = _principal(client, digest)
    rate_limit(request, principal)  # counted once: the general path does not count it again
    known: tuple[int, int] = (client.organisation_id, client.id)
    if found is None or known != guess:
        if len(_KEYS) >= _KEYS_KEPT:
            _KEYS.clear()
        _KEYS[digest] = known
        reading = recording(unit_id=known[0], client_id=known[1])
        [found] = await db.run(reading.lookup)
    return await reading.write(db, found, principal=principal, unit_code=unit_code)


def _principal(client: Any, digest: str) -> tuple[Principal, str]:
    """The client of the key's row, if it may record a reading; else Decline."""
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
    return principal, client.code
