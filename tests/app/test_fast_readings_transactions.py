"""The fast path's transactions: several statements and the commit in one round trip, and faults.

``fast_readings.PooledTransactions`` sends a transaction's statements as prepared statements run
by ``EXECUTE``, with its ``BEGIN`` and ``COMMIT``, in simple-protocol queries. These run it on a
database of their own, as the web process does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest

from app.api import fast_readings
from app.api.fast_readings import OutcomeUnknown, PooledTransactions
from app.db import libpq_conninfo
from app.readings.combined import Decline

pytestmark = pytest.mark.postgres

INSERT = ("INSERT INTO kept (id, note) VALUES (%(id)s, %(note)s) RETURNING id", {})


@pytest.fixture
def url(fresh_database_url: str) -> Iterator[str]:
    with psycopg.connect(libpq_conninfo(fresh_database_url), autocommit=True) as connection:
        connection.execute("CREATE TABLE kept (id integer PRIMARY KEY, note text)")
    yield fresh_database_url


def _kept(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(libpq_conninfo(url)) as connection:
        return connection.execute("SELECT id, note FROM kept ORDER BY id").fetchall()  # type: ignore[return-value]


def _with_pool(url: str, work: Callable[[PooledTransactions], Awaitable[Any]]) -> Any:
    """``work`` on a pool of one connection."""

    async def run() -> Any:
        pooled = PooledTransactions(url, connect_timeout_s=5, max_size=1)
        await pooled.open()
        try:
            return await work(pooled)
        finally:
            await pooled.close()

    return asyncio.run(run())


def _insert(id_: int, note: str) -> tuple[str, dict[str, Any]]:
    return INSERT[0], {"id": id_, "note": note}


def test_statements_in_one_round_trip_each_get_their_own_values_and_commit(url: str) -> None:
    async def work(pooled: PooledTransactions) -> list[Any]:
        async with pooled() as db:
            first = await db.run(
                ("SELECT %(a)s::int AS a, '100%%' AS percent", {"a": 1}),
                ("SELECT %(a)s::text AS a", {"a": "two"}),
            )
            [inserted] = await db.run(_insert(1, "it's kept"), commit=True)
        return [*first, inserted]

    one, two, inserted = _with_pool(url, work)
    assert (one.a, one.percent, two.a, inserted.id) == (1, "100%", "two", 1)
    assert _kept(url) == [(1, "it's kept")]


def test_a_declined_transaction_is_rolled_back_and_its_connection_used_again(url: str) -> None:
    pid = ("SELECT pg_backend_pid() AS pid", {})

    async def work(pooled: PooledTransactions) -> tuple[int, int]:
        with pytest.raises(Decline):
            async with pooled() as db:
                first, _ = await db.run(pid, _insert(1, "declined"))
                raise Decline
        async with pooled() as db:
            second, _ = await db.run(pid, _insert(2, "kept"), commit=True)
        return first.pid, second.pid

    first, second = _with_pool(url, work)
    assert _kept(url) == [(2, "kept")]
    assert first == second  # the declined transaction's connection was given back clean


def test_an_error_the_server_reports_in_the_commit_stores_nothing(url: str) -> None:
    """Not an unknown outcome: the general path may answer. The connection is replaced, and the
    statement prepared again on the next."""

    async def work(pooled: PooledTransactions) -> None:
        async with pooled() as db:
            await db.run(_insert(1, "first"), commit=True)
        with pytest.raises(psycopg.errors.UniqueViolation):
            async with pooled() as db:
                await db.run(_insert(2, "second"))
                await db.run(_insert(1, "again"), commit=True)
        async with pooled() as db:
            await db.run(_insert(3, "third"), commit=True)

    _with_pool(url, work)
    assert _kept(url) == [(1, "first"), (3, "third")]


def test_a_connection_lost_during_the_commit_leaves_the_outcome_unknown(url: str) -> None:
    """The server ends the connection while the commit's round trip waits for a lock."""
    holder = psycopg.connect(libpq_conninfo(url))
    holder.execute("SELECT pg_advisory_lock(42)")

    def end_the_waiter() -> None:
        with psycopg.connect(libpq_conninfo(url), autocommit=True) as admin:
            for _ in range(200):
                waiting = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND pid <> pg_backend_pid()"
                ).fetchall()
                if waiting:
                    admin.execute("SELECT pg_terminate_backend(%s)", [waiting[0][0]])
                    return
                threading.Event().wait(0.05)

    async def work(pooled: PooledTransactions) -> None:
        ender = threading.Thread(target=end_the_waiter)
        ender.start()
        try:
            with pytest.raises(OutcomeUnknown):
                async with pooled() as db:
                    await db.run(
                        _insert(1, "unknown"),
                        ("SELECT pg_advisory_xact_lock(42) AS locked", {}),
                        commit=True,
                    )
        finally:
            ender.join()
        async with pooled() as db:  # the pool replaced the connection
            await db.run(_insert(2, "after"), commit=True)

    try:
        _with_pool(url, work)
    finally:
        holder.close()
    assert _kept(url) == [(2, "after")]


def test_statements_are_prepared_once_per_connection(url: str) -> None:
    async def work(pooled: PooledTransactions) -> list[str]:
        for n in range(3):
            async with pooled() as db:
                await db.run(_insert(n, "again"), commit=True)
        async with pooled.pool.connection() as connection:
            rows = await connection.execute("SELECT name FROM pg_prepared_statements")
            return [name for (name,) in await rows.fetchall()]

    names = _with_pool(url, work)
    assert names == [fast_readings._STATEMENTS[INSERT[0]].name]


def test_a_prepared_statement_is_named_by_its_sql() -> None:
    """Web processes (and versions) that meet the same server connection, as through a pooler,
    agree on what each name means: a name never runs another statement's SQL."""
    first, again = fast_readings._Prepared(INSERT[0]), fast_readings._Prepared(INSERT[0])
    other = fast_readings._Prepared("SELECT 1 AS one")
    assert first.name == again.name != other.name
    assert first.name.startswith("exhale_fast_")
