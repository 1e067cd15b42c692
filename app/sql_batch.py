"""Rows for several tables inserted by one PostgreSQL statement (data-modifying CTEs).

Each row is given as ``(model, values)``; a column left out takes the model's Python default as
the ORM would give it (``utcnow``, an empty list), else the database's. The rows of one table
travel as one JSON parameter, unpacked by ``jsonb_populate_recordset`` into the table's own
column types, and go in one ``INSERT`` in the order given, so their ids follow it. The statement
is short and has one parameter per table, so psycopg caches its conversion and prepares it once
per connection; its SQL is built once per shape (which tables, which columns).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

from pydantic_core import to_json
from sqlalchemy import JSON, String, Table, TextClause, bindparam, text
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from app.db import Base

Row = tuple[type[Base], dict[str, Any]]
_Shape = tuple[tuple[str, tuple[str, ...]], ...]
_BUILT: dict[tuple[_Shape, str], TextClause] = {}
_DEFAULTS: dict[str, list[tuple[str, Callable[[], Any]]]] = {}


def _defaults(table: Table) -> list[tuple[str, Callable[[], Any]]]:
    """Each column's Python default, as a function giving a fresh value."""
    found = _DEFAULTS.get(table.name)
    if found is None:
        found = []
        for column in table.columns:
            default = column.default
            if isinstance(default, CallableColumnDefault):
                found.append((column.key, partial(default.arg, None)))  # type: ignore[arg-type]
            elif isinstance(default, ScalarElementColumnDefault):
                found.append((column.key, partial(_same, default.arg)))
        _DEFAULTS[table.name] = found
    return found


def _same(value: Any) -> Any:
    return value


def _json(group: list[dict[str, Any]]) -> str:
    for values in group:
        for value in values.values():
            if isinstance(value, dt.datetime) and value.utcoffset() is None:
                raise ValueError("naive datetime given to a UTC column; attach a timezone")
    return to_json(group).decode()


def statement(rows: Sequence[Row], *, then: str = "SELECT 1") -> tuple[TextClause, dict[str, Any]]:
    """One statement inserting every row, then running ``then``; and its parameters."""
    grouped: dict[str, tuple[Table, list[dict[str, Any]]]] = {}
    for model, values in rows:
        table = cast(Table, model.__table__)
        filled = dict(values)
        for key, default in _defaults(table):
            if key not in filled:
                filled[key] = default()
        grouped.setdefault(table.name, (table, []))[1].append(filled)
    shape: _Shape = tuple((name, tuple(sorted(group[0]))) for name, (_, group) in grouped.items())
    parameters: dict[str, Any] = {}
    for n, ((_, columns), (_, group)) in enumerate(zip(shape, grouped.values(), strict=True)):
        if any(sorted(values) != list(columns) for values in group):
            raise ValueError("every row of one table must give the same columns")
        parameters[f"r{n}"] = _json(group)
    built = _BUILT.get((shape, then))
    if built is None:
        tables = {name: table for name, (table, _) in grouped.items()}
        built = _BUILT[(shape, then)] = _build(shape, tables, then)
    return built, parameters


def _selected(table: Table, column: str) -> str:
    """A JSON column's None is JSON ``null``, as the ORM stores it (``none_as_null`` off)."""
    type_ = table.c[column].type
    if isinstance(type_, JSON) and not type_.none_as_null:
        return f"coalesce({column}, 'null'::jsonb)"
    return column


def _build(shape: _Shape, tables: dict[str, Table], then: str) -> TextClause:
    ctes = []
    for n, (name, columns) in enumerate(shape):
        selected = ", ".join(_selected(tables[name], column) for column in columns)
        ctes.append(
            f"w{n} AS (INSERT INTO {name} ({', '.join(columns)}) SELECT {selected} FROM "
            f"jsonb_populate_recordset(NULL::{name}, CAST(:r{n} AS jsonb)))"
        )
    binds = [bindparam(f"r{n}", type_=String()) for n in range(len(shape))]
    return text(f"WITH {', '.join(ctes)} {then}").bindparams(*binds)
