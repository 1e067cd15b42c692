"""The measures as CSV for the national portal, with small-number suppression. Pure.

Columns (docs/measures.md, "Export"): ``unit_code, unit_name, month, measure, numerator,
denominator, proportion, unknown, note``. One row per unit, month and measure, ordered by unit
code, month, then the measures' order. ``proportion`` is a fraction to 4 decimal places;
``unknown`` is empty for measures without an unknown line.

Suppression (``suppress_below`` = N; 0 or 1 turns it off): a count from 1 to N - 1 is shown as
``*``. The numerator is also hidden when the denominator is, or when denominator minus numerator
is from 1 to N - 1 (it could be worked out from the two); the proportion is hidden with the
numerator. Zero is never hidden. ``note`` says ``suppressed`` or ``no data``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from app.measures.queries import Count
from app.measures.service import MeasureValue

COLUMNS = (
    "unit_code",
    "unit_name",
    "month",
    "measure",
    "numerator",
    "denominator",
    "proportion",
    "unknown",
    "note",
)
HIDDEN: Literal["*"] = "*"


Hidden = Literal["*"]
Note = Literal["", "no data", "suppressed"]


@dataclass(frozen=True, slots=True)
class Shown:
    """A count as published: numbers, or ``*`` where suppressed."""

    numerator: int | Hidden
    denominator: int | Hidden
    proportion: float | Hidden | None
    unknown: int | Hidden | None
    note: Note


def _hidden(count: Count, below: int) -> tuple[bool, bool, bool]:
    """Whether the numerator (and proportion), the denominator and the unknown are shown as *."""
    numerator, denominator, unknown = count.numerator, count.denominator, count.unknown
    denominator_hidden = 0 < denominator < below
    numerator_hidden = (
        denominator_hidden or 0 < numerator < below or 0 < denominator - numerator < below
    )
    return numerator_hidden, denominator_hidden, unknown is not None and 0 < unknown < below


def _note(count: Count, numerator_hidden: bool, unknown_hidden: bool) -> Note:
    if numerator_hidden or unknown_hidden:
        return "suppressed"
    return "no data" if count.denominator == 0 else ""


def shown(count: Count, *, suppress_below: int) -> Shown:
    """Apply small-number suppression to one count (see the module's rule)."""
    numerator_hidden, denominator_hidden, unknown_hidden = _hidden(count, suppress_below)
    return Shown(
        HIDDEN if numerator_hidden else count.numerator,
        HIDDEN if denominator_hidden else count.denominator,
        HIDDEN if numerator_hidden else count.proportion,
        HIDDEN if unknown_hidden else count.unknown,
        _note(count, numerator_hidden, unknown_hidden),
    )


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    """A name that a spreadsheet would run as a formula is quoted (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _csv_line(fields: Iterable[str]) -> str:
    """One line, quoted as RFC 4180 needs (a name with a comma or a quote, say)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(fields)
    return buffer.getvalue()


def _cells(value: MeasureValue, below: int) -> str:
    """The fields after the unit's: month, measure and ``shown`` as text (a proportion to 4
    places). None of them can hold a comma, a quote or a line end, so none is quoted."""
    count = value.count
    numerator_hidden, denominator_hidden, unknown_hidden = _hidden(count, below)
    numerator, denominator, unknown = count.numerator, count.denominator, count.unknown
    return ",".join(
        (
            value.month.label,
            value.measure.code,
            HIDDEN if numerator_hidden else str(numerator),
            HIDDEN if denominator_hidden else str(denominator),
            HIDDEN if numerator_hidden else f"{numerator / denominator:.4f}" if denominator else "",
            HIDDEN if unknown_hidden else "" if unknown is None else str(unknown),
            _note(count, numerator_hidden, unknown_hidden),
        )
    )


def csv_chunks(
    values: Iterable[MeasureValue], *, suppress_below: int, rows_per_chunk: int = 500
) -> Iterator[str]:
    """The CSV text (RFC 4180 quoting, CRLF line ends), a few hundred whole lines at a time."""
    yield _csv_line(COLUMNS)
    units: dict[str, str] = {}  # a unit's code and name, quoted once
    lines: list[str] = []
    for value in values:
        unit = units.get(value.unit.code)
        if unit is None:
            unit = units[value.unit.code] = _csv_line([value.unit.code, _text(value.unit.name)])
            unit = units[value.unit.code] = unit.removesuffix("\r\n") + ","
        lines.append(unit + _cells(value, suppress_below) + "\r\n")
        if len(lines) == rows_per_chunk:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)
