"""SQL building blocks for the measures, the same on SQLite and PostgreSQL.

Two dialect-specific expressions (a date's month, a date plus days), 0/1 flags for conditional
aggregation, the result of one measure (:class:`Count`), and what to count (:class:`Scope`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    String,
    case,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from app.measures.months import Month
from app.pregnancies.models import Pregnancy

# --- dialect helpers: the same expression on SQLite and PostgreSQL -------------------------------


class month_label(FunctionElement[str]):  # noqa: N801 (an SQL function reads like one)
    """``YYYY-MM`` of a date column."""

    type = String()
    inherit_cache = True
    name = "month_label"


@compiles(month_label)
def _month_label_sqlite(element: month_label, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m', {compiler.process(element.clauses, **kw)})"


@compiles(month_label, "postgresql")
def _month_label_postgresql(element: month_label, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM')"


class add_days(FunctionElement[Any]):  # noqa: N801
    """A date column plus a whole number of days (negative to subtract).

    The days are a literal in the SQL (a whole number, so safe) and part of the statement's
    cache key, so a different window compiles a different statement.
    """

    type = Date()
    inherit_cache = True
    name = "add_days"

    def __init__(self, column: Any, days: int) -> None:
        super().__init__(column, literal_column(str(int(days))))


def _parts(element: add_days, compiler: SQLCompiler, **kw: Any) -> tuple[str, int]:
    column, days = element.clauses.clauses
    return compiler.process(column, **kw), int(str(days))


@compiles(add_days)
def _add_days_sqlite(element: add_days, compiler: SQLCompiler, **kw: Any) -> str:
    column, days = _parts(element, compiler, **kw)
    return f"date({column}, '{days:+d} days')"


@compiles(add_days, "postgresql")
def _add_days_postgresql(element: add_days, compiler: SQLCompiler, **kw: Any) -> str:
    column, days = _parts(element, compiler, **kw)
    return f"({column} + {days:d})"


def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 where the condition holds, else 0 (NULL counts as not holding)."""
    return case((condition, 1), else_=0)


def any_(condition: ColumnElement[bool], name: str) -> Any:
    return func.max(flag(condition)).label(name)


def total(column: Any) -> Any:
    return func.coalesce(func.sum(column), 0)


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Count:
    """One measure for one unit and month. ``unknown``: left out of the denominator (or None)."""

    numerator: int
    denominator: int
    unknown: int | None = None

    @property
    def proportion(self) -> float | None:
        """None when there is no denominator: "no data", never a division by zero."""
        return self.numerator / self.denominator if self.denominator else None


Key = tuple[int, str, str]  # unit id, month label, measure code


@dataclass(frozen=True)
class Scope:
    """Which units and months to count; ``unit_ids`` None means every maternity unit."""

    unit_ids: Sequence[int] | None
    first: Month
    last: Month

    def units(self, column: Any) -> ColumnElement[bool]:
        if self.unit_ids is None:
            return true()
        chosen: ColumnElement[bool] = column.in_(list(self.unit_ids))
        return chosen

    def pregnancies(self, column: Any) -> ColumnElement[bool]:
        """A pregnancy id column restricted to the units in scope."""
        if self.unit_ids is None:
            return true()
        at_units = select(Pregnancy.id).where(Pregnancy.unit_id.in_(list(self.unit_ids)))
        chosen: ColumnElement[bool] = column.in_(at_units)
        return chosen

    def dates(self, column: Any) -> ColumnElement[bool]:
        within: ColumnElement[bool] = column.between(self.first.first_day, self.last.last_day)
        return within


Rows = Iterator[tuple[Key, Count]]
