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
import itertools
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


def shown(count: Count, *, suppress_below: int) -> Shown:
    """Apply small-number suppression to one count (see the module's rule)."""
    below = suppress_below
    numerator, denominator, unknown = count.numerator, count.denominator, count.unknown
    hide_denominator = 0 < denominator < below
    hide_numerator = (
        hide_denominator or 0 < numerator < below or 0 < denominator - numerator < below
    )
    hide_unknown = unknown is not None and 0 < unknown < below
    note: Note = ""
    if hide_numerator or hide_unknown:
        note = "suppressed"
    elif denominator == 0:
        note = "no data"
    return Shown(
        HIDDEN if hide_numerator else numerator,
        HIDDEN if hide_denominator else denominator,
        HIDDEN if hide_numerator else count.proportion,
        HIDDEN if hide_unknown else unknown,
        note,
    )


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    """A name that a spreadsheet would run as a formula is quoted (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _cell(value: int | float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def csv_rows(values: Iterable[MeasureValue], *, suppress_below: int) -> Iterator[list[str]]:
    yield list(COLUMNS)
    names: dict[str, str] = {}
    for value in values:
        unit, month, measure = value.unit, value.month, value.measure
        out = shown(value.count, suppress_below=suppress_below)
        name = names.get(unit.code)
        if name is None:
            name = names[unit.code] = _text(unit.name)
        yield [
            unit.code,
            name,
            month.label,
            measure.code,
            _cell(out.numerator),
            _cell(out.denominator),
            _cell(out.proportion),
            _cell(out.unknown),
            out.note,
        ]


def csv_chunks(
    values: Iterable[MeasureValue], *, suppress_below: int, rows_per_chunk: int = 500
) -> Iterator[str]:
    """The CSV text (RFC 4180 quoting, CRLF line ends), a few hundred whole lines at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    rows = csv_rows(values, suppress_below=suppress_below)
    while chunk := list(itertools.islice(rows, rows_per_chunk)):
        writer.writerows(chunk)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
