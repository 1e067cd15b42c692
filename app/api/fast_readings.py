"""``POST /api/v1/readings`` on PostgreSQL, for the requests most senders make, in three statements.

With an API key, the route tries this path before the general one (``app.readings.service``,
through the ORM): the API key's statement takes the locks every path takes, and
``app.readings.combined`` writes the reading's rows in one or two statements more. It runs on
psycopg's async connections from a pool of its own (``PooledTransactions``), so a request costs
no thread, and none of SQLAlchemy's machinery.

It serves a request only when it can answer exactly as the general path would, and *declines*
(before writing anything, its transaction rolled back) otherwise: no API key (a person's
session, an OAuth access token), an ``Idempotency-Key``, a monitor result by id, a body or key
the general path would refuse, whatever ``combined`` declines, or a database error before the
commit (a connection the database dropped). The general path then answers as it always does,
with its errors and audit. An error during the commit is the general path's 503: the reading may
or may not be stored, and a re-send with its ``source_id`` is never recorded twice.
``EXHALE_FAST_READINGS=false`` turns this path off.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
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
from app.readings.combined import Decline, Executor
from app.readings.schemas import ReadingCreate

log = get_logger(__name__)
# Who may record a reading: the route requires the same roles.
ROLES = ("epr", "bridge", "midwife")

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
        async with self.pool.connection() as connection, connection.transaction():
            yield _Cursor(connection.cursor(row_factory=namedtuple_row))


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
    committing = False
    try:
        async with transactions() as db:
            principal, unit_code = await _principal(
                db, request, api_key, nhs_number, body.source_id
            )
            answer = await combined.record(
                db,
                principal=principal,
                unit_code=unit_code,
                body=body,
                nhs_number=nhs_number,
                settings=settings,
                now=now,
            )
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
