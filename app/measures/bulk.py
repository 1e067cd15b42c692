"""Loading generated rows fast: COPY on PostgreSQL, batched inserts on SQLite.

For demonstration and benchmark data only: ids are assigned by the generator, so nothing else
may write to these tables meanwhile; PostgreSQL's id sequences are moved past them afterwards.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from app.db import Base
from app.measures.demo import COLUMNS, JSON_COLUMNS, Batch, Ids


def next_ids(connection: Connection) -> Ids:
    """One past the largest id of each table the generator writes."""
    ids = Ids()
    for table in COLUMNS:
        largest = connection.execute(select(func.max(Base.metadata.tables[table].c.id))).scalar()
        ids.next[table] = (largest or 0) + 1
    return ids


def load(connection: Connection, batch: Batch) -> int:
    """Write one batch in foreign-key order; returns the number of rows."""
    written = 0
    for table, rows in batch.items():
        if not rows:
            continue
        if connection.dialect.name == "postgresql":
            _copy(connection, table, rows)
        else:
            columns = COLUMNS[table]
            connection.execute(
                Base.metadata.tables[table].insert(),
                [dict(zip(columns, r, strict=True)) for r in rows],
            )
        written += len(rows)
    return written


def _copy(connection: Connection, table: str, rows: list[tuple[object, ...]]) -> None:
    from psycopg.types.json import Jsonb

    columns = COLUMNS[table]
    wrap = [i for i, name in enumerate(columns) if (table, name) in JSON_COLUMNS]
    raw = connection.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN"  # names are this module's constants
        ) as copy,
    ):
        for row in rows:
            if wrap:
                values = list(row)
                for i in wrap:
                    values[i] = Jsonb(values[i])
                copy.write_row(values)
            else:
                copy.write_row(row)


def move_sequences(connection: Connection) -> None:
    """After loading with explicit ids, PostgreSQL's sequences must continue after them."""
    if connection.dialect.name != "postgresql":
        return
    for table in COLUMNS:
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        )
