"""Results from CSV files exported by monitor software, for monitors that cannot be connected.

Each maker's software names its columns differently, so a ``ColumnMapping`` (data, often JSON) says
which column holds what. Good rows become the same ``Result`` a serial driver yields; bad rows are
returned with their line number in the file (the header is line 1), as a spreadsheet shows them.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devices.errors import CsvImportError
from devices.readings import Result

_WHOLE = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class ColumnMapping:
    """Column names for each field. Give ``device_serial`` (a column) or ``fixed_serial`` (one
    monitor's export without a serial column). Times without a UTC offset are read in
    ``timezone``; ``time_format`` and ``date_format`` are ``strptime`` formats (ISO 8601 if
    unset), such as ``%d/%m/%Y %H:%M`` for UK exports."""

    co_ppm: str
    measured_at: str
    sequence: str
    device_serial: str | None = None
    fixed_serial: str | None = None
    battery_percent: str | None = None
    calibration_due_on: str | None = None
    model: str | None = None
    firmware: str | None = None
    time_format: str | None = None
    date_format: str | None = None
    timezone: str = "Europe/London"
    delimiter: str = ","

    def __post_init__(self) -> None:
        if (self.device_serial is None) == (self.fixed_serial is None):
            raise CsvImportError("give exactly one of device_serial (a column) or fixed_serial")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CsvImportError(f"unknown timezone {self.timezone!r}") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnMapping:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CsvImportError(f"unknown mapping field(s): {', '.join(unknown)}")
        return cls(**data)

    def columns(self) -> list[str]:
        names = [
            self.co_ppm,
            self.measured_at,
            self.sequence,
            self.device_serial,
            self.battery_percent,
            self.calibration_due_on,
            self.model,
            self.firmware,
        ]
        return [name for name in names if name is not None]


@dataclass(frozen=True, slots=True)
class RejectedRow:
    row: int
    reason: str


@dataclass
class CsvImport:
    results: list[Result] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)


def read_csv(path: Path, mapping: ColumnMapping) -> CsvImport:
    """Every row of the CSV file at ``path``: results and rejected rows (a BOM is allowed)."""
    outcome = CsvImport()
    with path.open(encoding="utf-8-sig", newline="") as file:
        for item in iter_csv(file, mapping):
            if isinstance(item, Result):
                outcome.results.append(item)
            else:
                outcome.rejected.append(item)
    return outcome


def iter_csv(lines: Iterable[str], mapping: ColumnMapping) -> Iterator[Result | RejectedRow]:
    """A ``Result`` or a ``RejectedRow`` for each data row, in file order.

    Raises ``CsvImportError`` when the header lacks a mapped column. A repeated
    (serial, sequence) is rejected as a duplicate of the row that first had it.
    """
    reader = csv.DictReader(lines, delimiter=mapping.delimiter)
    header = reader.fieldnames or []
    missing = [name for name in mapping.columns() if name not in header]
    if missing:
        raise CsvImportError(
            f"column(s) {', '.join(missing)} not in the file; it has: {', '.join(header)}"
        )
    first_row: dict[tuple[str, int], int] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield RejectedRow(reader.line_num, f"unreadable CSV: {error}")
            continue
        number = reader.line_num
        try:
            result = _row_result(row, mapping)
        except ValueError as error:
            yield RejectedRow(number, str(error))
            continue
        key = (result.device_serial, result.sequence)
        if key in first_row:
            yield RejectedRow(number, f"duplicate of row {first_row[key]} ({result.key})")
            continue
        first_row[key] = number
        yield result


def _row_result(row: Mapping[str, str | None], mapping: ColumnMapping) -> Result:
    def cell(column: str | None) -> str:
        return "" if column is None else (row.get(column) or "").strip()

    serial = mapping.fixed_serial or cell(mapping.device_serial)
    if not serial:
        raise ValueError(f"{mapping.device_serial} is empty")
    battery = cell(mapping.battery_percent).removesuffix("%").strip()
    due = cell(mapping.calibration_due_on)
    return Result(
        device_serial=serial,
        sequence=_whole(cell(mapping.sequence), mapping.sequence),
        co_ppm=_whole(cell(mapping.co_ppm), mapping.co_ppm),
        measured_at=_time(cell(mapping.measured_at), mapping),
        battery_percent=_whole(battery, str(mapping.battery_percent)) if battery else None,
        calibration_due_on=_date(due, mapping) if due else None,
        model=cell(mapping.model) or None,
        firmware=cell(mapping.firmware) or None,
    )


def _whole(text: str, column: str) -> int:
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"{column} {text!r} is not a whole number")
    return int(text)


def _time(text: str, mapping: ColumnMapping) -> dt.datetime:
    column = mapping.measured_at
    if not text:
        raise ValueError(f"{column} is empty")
    try:
        if mapping.time_format:
            parsed = dt.datetime.strptime(text, mapping.time_format)  # noqa: DTZ007 - zone below
        else:
            parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        expected = mapping.time_format or "ISO 8601"
        raise ValueError(f"{column} {text!r} is not a time in {expected}") from None
    if parsed.utcoffset() is not None:
        return parsed
    zone = ZoneInfo(mapping.timezone)
    local = parsed.replace(tzinfo=zone)
    if local.utcoffset() != local.replace(fold=1).utcoffset():
        raise ValueError(
            f"{column} {text!r} is ambiguous or skipped in {mapping.timezone} (clock change): "
            "export times with their UTC offset"
        )
    return local


def _date(text: str, mapping: ColumnMapping) -> dt.date:
    try:
        if mapping.date_format:
            return dt.datetime.strptime(text, mapping.date_format).date()  # noqa: DTZ007 - a date
        return dt.date.fromisoformat(text)
    except ValueError:
        expected = mapping.date_format or "YYYY-MM-DD"
        raise ValueError(
            f"{mapping.calibration_due_on} {text!r} is not a date in {expected}"
        ) from None
