"""Rows for several tables inserted by one PostgreSQL statement (data-modifying CTEs).

Each row is given as ``(model, values)``; a column left out takes the model's Python default as
the ORM would give it (``utcnow``, an empty list), else the database's. Each table's rows travel
as one JSON parameter, unpacked by ``json_populate_recordset`` into the table's column types, and
go in one ``INSERT`` in the order given, so their ids follow it. The statement is short and has a
parameter per table, so it is prepared once per connection and PostgreSQL parses each table's
JSON once (cheaper than one ``jsonb`` document for every table); its SQL is built once per shape
(which tables, which columns).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

from pydantic_core import to_json
from sqlalchemy import JSON, DateTime, Table
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from app.db import Base, UTCDateTime

Row = tuple[type[Base], dict[str, Any]]
_Shape = tuple[tuple[type[Base], tuple[str, ...]], ...]
_BUILT: dict[tuple[_Shape, str], str] = {}


class _Table:
    """What inserting into one model's table needs, worked out once."""

    def __init__(self, model: type[Base]) -> None:
        self.table = cast(Table, model.__table__)
        self.defaults: list[tuple[str, Callable[[], Any]]] = []
        for column in self.table.columns:
            default = column.default
            if isinstance(default, CallableColumnDefault):
                self.defaults.append((column.key, partial(default.arg, None)))  # type: ignore[arg-type]
            elif isinstance(default, ScalarElementColumnDefault):
                self.defaults.append((column.key, partial(_same, default.arg)))
        self.timestamps = tuple(
            c.key for c in self.table.columns if isinstance(c.type, DateTime | UTCDateTime)
        )

    def filled(self, values: dict[str, Any]) -> dict[str, Any]:
        """The row with its Python defaults; a naive timestamp refused."""
        row = dict(values)
        for key, default in self.defaults:
            if key not in row:
                row[key] = default()
        for key in self.timestamps:
            value = row.get(key)
            if isinstance(value, dt.datetime) and value.utcoffset() is None:
                raise ValueError("naive datetime given to a UTC column; attach a timezone")
        return row


_TABLES: dict[type[Base], _Table] = {}


def _same(value: Any) -> Any:
    return value


def statement(rows: Sequence[Row], *, then: str = "SELECT 1") -> tuple[str, dict[str, str]]:
    """One statement inserting every row, then running ``then``; and its one parameter.

    The SQL takes psycopg's ``%(name)s`` parameters: run it on a psycopg cursor, or through
    SQLAlchemy's ``exec_driver_sql``."""
    grouped: dict[type[Base], list[dict[str, Any]]] = {}
    for model, values in rows:
        plan = _TABLES.get(model) or _TABLES.setdefault(model, _Table(model))
        row = plan.filled(values)
        group = grouped.get(model)
        if group is None:
            grouped[model] = [row]
        elif row.keys() != group[0].keys():
            raise ValueError("every row of one table must give the same columns")
        else:
            group.append(row)
    shape: _Shape = tuple((model, tuple(group[0])) for model, group in grouped.items())
    built = _BUILT.get((shape, then))
    if built is None:
        built = _BUILT[(shape, then)] = _build(shape, then)
    return built, {f"rows{n}": to_json(group).decode() for n, group in enumerate(grouped.values())}


def _selected(table: Table, column: str) -> str:
    """A JSON column's None is JSON ``null``, as the ORM stores it (``none_as_null`` off)."""
    type_ = table.c[column].type
    if isinstance(type_, JSON) and not type_.none_as_null:
        return f"coalesce({column}, 'null'::jsonb)"
    return column


def _build(shape: _Shape, then: str) -> str:
    ctes = []
    for n, (model, columns) in enumerate(shape):
        table = _TABLES[model].table
        selected = ", ".join(_selected(table, column) for column in columns)
        ctes.append(
            f"w{n} AS (INSERT INTO {table.name} ({', '.join(columns)}) SELECT {selected} FROM "
            f"json_populate_recordset(NULL::{table.name}, CAST(%(rows{n})s AS json)))"
        )
    return f"WITH {', '.join(ctes)} {then}"
