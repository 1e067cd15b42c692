"""CSV exports from monitor software: the same Results, bad rows named by their line number."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from devices.csv_import import ColumnMapping, RejectedRow, iter_csv, read_csv
from devices.errors import CsvImportError
from devices.readings import Result

UK = ColumnMapping(
    device_serial="Serial No",
    sequence="Test No",
    co_ppm="CO (ppm)",
    measured_at="Date/Time",
    battery_percent="Battery",
    calibration_due_on="Cal Due",
    time_format="%d/%m/%Y %H:%M",
    date_format="%d/%m/%Y",
)

EXPORT = """\ufeffSerial No,Test No,CO (ppm),Date/Time,Battery,Cal Due
PICO-1,1,2,01/03/2025 10:15,87%,31/01/2026
PICO-1,2,18,01/07/2025 10:15,86,31/01/2026
PICO-1,3,-1,01/07/2025 10:20,86,31/01/2026
PICO-1,4,600,01/07/2025 10:25,86,31/01/2026
PICO-1,5,3,32/13/2025 10:00,86,31/01/2026
PICO-1,2,18,01/07/2025 10:15,86,31/01/2026
,6,3,01/07/2025 10:30,86,31/01/2026
PICO-1,7,3,30/03/2025 01:30,86,31/01/2026
PICO-1,x8,3,01/07/2025 10:40,86,31/01/2026
PICO-1,9,4,01/07/2025 10:45,,
"""


def test_good_rows_become_results_and_bad_rows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(EXPORT, encoding="utf-8")

    imported = read_csv(path, UK)

    london = dt.timezone(dt.timedelta(hours=1))
    assert imported.results == [
        Result(
            "PICO-1", 1, 2, dt.datetime(2025, 3, 1, 10, 15, tzinfo=dt.UTC), 87, dt.date(2026, 1, 31)
        ),
        Result(
            "PICO-1",
            2,
            18,
            dt.datetime(2025, 7, 1, 10, 15, tzinfo=london),
            86,
            dt.date(2026, 1, 31),
        ),
        Result("PICO-1", 9, 4, dt.datetime(2025, 7, 1, 10, 45, tzinfo=london)),
    ]
    rows = {row.row: row.reason for row in imported.rejected}
    assert sorted(rows) == [4, 5, 6, 7, 8, 9, 10]
    assert "not a whole number" in rows[4]
    assert "outside the monitor's range 0-500" in rows[5]
    assert "not a time in %d/%m/%Y %H:%M" in rows[6]
    assert "duplicate of row 3" in rows[7]
    assert "Serial No is empty" in rows[8]
    assert "clock change" in rows[9]
    assert "Test No 'x8' is not a whole number" in rows[10]


def test_a_single_monitor_export_with_iso_times() -> None:
    mapping = ColumnMapping.from_dict(
        {
            "fixed_serial": "MICRO-5",
            "sequence": "id",
            "co_ppm": "ppm",
            "measured_at": "time",
            "delimiter": ";",
        }
    )
    text = "id;ppm;time\n1;5;2025-03-01T10:15:00+00:00\n2;6;2025-03-01 11:00\n"
    items = list(iter_csv(io.StringIO(text), mapping))
    assert [item.device_serial for item in items if isinstance(item, Result)] == ["MICRO-5"] * 2
    assert not any(isinstance(item, RejectedRow) for item in items)


def test_a_missing_column_stops_the_import_with_what_the_file_has() -> None:
    with pytest.raises(CsvImportError, match=r"Cal Due not in the file; it has: Serial No"):
        list(iter_csv(io.StringIO("Serial No,Test No,CO (ppm),Date/Time,Battery\n"), UK))


@pytest.mark.parametrize(
    "data",
    [
        {"sequence": "s", "co_ppm": "p", "measured_at": "t"},
        {
            "sequence": "s",
            "co_ppm": "p",
            "measured_at": "t",
            "device_serial": "a",
            "fixed_serial": "B",
        },
        {"fixed_serial": "B", "sequence": "s", "co_ppm": "p", "measured_at": "t", "colour": "x"},
        {
            "fixed_serial": "B",
            "sequence": "s",
            "co_ppm": "p",
            "measured_at": "t",
            "timezone": "Mars",
        },
    ],
)
def test_a_bad_mapping_is_refused(data: dict[str, str]) -> None:
    with pytest.raises(CsvImportError):
        ColumnMapping.from_dict(data)
