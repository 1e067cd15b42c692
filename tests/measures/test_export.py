"""The export's column layout, small-number suppression, and the month parameters."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from app.errors import InvalidInput
from app.measures import export, service
from app.measures.definitions import BY_CODE
from app.measures.months import Month
from app.measures.queries import Count
from app.measures.service import MeasureValue, Unit

UNIT = Unit(1, "RXX01", "St Elsewhere, Maternity")


def value(code: str, count: Count, month: str = "2026-03", unit: Unit = UNIT) -> MeasureValue:
    return MeasureValue(unit, Month.parse(month), BY_CODE[code], count)


def parsed(values: list[MeasureValue], below: int) -> list[dict[str, str]]:
    text = "".join(export.csv_chunks(values, suppress_below=below))
    return list(csv.DictReader(io.StringIO(text)))


def test_the_column_layout_is_the_documented_one() -> None:
    text = "".join(
        export.csv_chunks([value("smoking_at_booking", Count(12, 140, 3))], suppress_below=0)
    )
    header, row, end = text.split("\r\n")
    assert (
        header == "unit_code,unit_name,month,measure,numerator,denominator,proportion,unknown,note"
    )
    assert row == 'RXX01,"St Elsewhere, Maternity",2026-03,smoking_at_booking,12,140,0.0857,3,'
    assert end == ""


def test_a_measure_without_an_unknown_line_leaves_it_empty_and_no_data_says_so() -> None:
    rows = parsed(
        [value("co_test_at_booking", Count(9, 10)), value("nrt_prescribed", Count(0, 0))], 0
    )
    assert (rows[0]["proportion"], rows[0]["unknown"], rows[0]["note"]) == ("0.9000", "", "")
    assert (rows[1]["numerator"], rows[1]["denominator"], rows[1]["proportion"]) == ("0", "0", "")
    assert rows[1]["note"] == "no data"


@pytest.mark.parametrize(
    ("count", "numerator", "denominator", "proportion", "unknown"),
    [
        (Count(12, 140, 30), "12", "140", "0.0857", "30"),  # nothing small
        (Count(3, 140, 30), "*", "140", "*", "30"),  # a small numerator
        (Count(0, 140, 30), "0", "140", "0.0000", "30"),  # zero is never hidden
        (Count(135, 140, 30), "*", "140", "*", "30"),  # 140 - 135 = 5 would give it away
        (Count(133, 140, 30), "*", "140", "*", "30"),  # 140 - 133 = 7: still small
        (Count(132, 140, 30), "132", "140", "0.9429", "30"),  # 140 - 132 = 8: shown
        (Count(2, 5, 0), "*", "*", "*", "0"),  # a small denominator hides both
        (Count(12, 140, 7), "12", "140", "0.0857", "*"),  # a small unknown line
        (Count(8, 8, 0), "8", "8", "1.0000", "0"),  # 8 is not small; 8 - 8 = 0 is not either
    ],
)
def test_counts_from_1_to_7_are_suppressed_by_default(
    count: Count, numerator: str, denominator: str, proportion: str, unknown: str
) -> None:
    (row,) = parsed([value("smoking_at_booking", count)], below=8)
    assert (row["numerator"], row["denominator"], row["proportion"], row["unknown"]) == (
        numerator,
        denominator,
        proportion,
        unknown,
    )
    hidden = "*" in (numerator, denominator, unknown)
    assert row["note"] == ("suppressed" if hidden else "")


def test_the_threshold_is_configurable_and_0_turns_suppression_off() -> None:
    count = Count(9, 140, 0)
    assert parsed([value("smoking_at_booking", count)], below=10)[0]["numerator"] == "*"
    assert parsed([value("smoking_at_booking", count)], below=0)[0]["numerator"] == "9"
    assert parsed([value("smoking_at_booking", Count(1, 2, 1))], below=1)[0]["numerator"] == "1"


def test_a_unit_name_a_spreadsheet_would_run_is_quoted() -> None:
    evil = Unit(2, "RXX02", '=HYPERLINK("http://x")')
    (row,) = parsed([value("co_test_at_booking", Count(1, 1), unit=evil)], 0)
    assert row["unit_name"].startswith("'=")


def test_a_unit_name_with_quotes_commas_and_a_line_break_reads_back_whole() -> None:
    odd = Unit(3, "RXX03", 'The "New" Unit, North\nWing')
    values = [
        value(code, Count(9, 20), unit=odd) for code in ("co_test_at_booking", "quit_date_set")
    ]
    rows = parsed(values, 0)
    assert [(r["unit_name"], r["measure"], r["numerator"]) for r in rows] == [
        ('The "New" Unit, North\nWing', "co_test_at_booking", "9"),
        ('The "New" Unit, North\nWing', "quit_date_set", "9"),
    ]


def test_a_long_export_comes_in_chunks_of_whole_lines() -> None:
    values = [value("co_test_at_booking", Count(n, 100)) for n in range(1_200)]
    chunks = list(export.csv_chunks(values, suppress_below=0, rows_per_chunk=500))
    assert [chunk.count("\r\n") for chunk in chunks] == [1, 500, 500, 200]
    assert all(chunk.endswith("\r\n") for chunk in chunks)


# --- month parameters --------------------------------------------------------------------------

TODAY = dt.date(2026, 11, 26)


def fields_of(error: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [f.field for f in error.value.fields]


def test_the_default_range_is_the_12_months_to_this_one() -> None:
    assert service.month_range(None, None, today=TODAY) == (Month(2025, 12), Month(2026, 11))
    assert service.month_range("2026-01", "2026-01", today=TODAY) == (
        Month(2026, 1),
        Month(2026, 1),
    )


def test_a_backwards_range_names_to() -> None:
    with pytest.raises(InvalidInput) as error:
        service.month_range("2026-05", "2026-04", today=TODAY)
    assert fields_of(error) == ["to"]


def test_more_than_five_years_names_from() -> None:
    assert service.month_range("2021-12", "2026-11", today=TODAY)[0] == Month(2021, 12)  # 60
    with pytest.raises(InvalidInput) as error:
        service.month_range("2021-11", "2026-11", today=TODAY)  # 61 months
    assert fields_of(error) == ["from"]
    assert "61 months" in error.value.fields[0].message


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "March", "2026-03-01", ""])
def test_a_month_that_is_not_yyyy_mm_names_its_parameter(text: str) -> None:
    with pytest.raises(InvalidInput) as error:
        service.month_range(text, None, today=TODAY)
    assert fields_of(error) == ["from"]


@pytest.mark.parametrize("text", ["seven", "-1", "7.5", "1001"])
def test_a_suppression_threshold_that_is_not_a_whole_number_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as error:
        service.parse_suppress_below(text, 8)
    assert fields_of(error) == ["suppress_below"]
    assert service.parse_suppress_below(None, 8) == 8
    assert service.parse_suppress_below("0", 8) == 0


def test_months_count_across_years() -> None:
    assert Month(2025, 12).next() == Month(2026, 1)
    assert Month(2026, 1).plus(-1) == Month(2025, 12)
    assert Month(2024, 2).last_day == dt.date(2024, 2, 29)
    # England's months begin at local midnight: 1 April 2026 is 23:00 UTC on 31 March (BST).
    assert Month(2026, 4).starts_at() == dt.datetime(2026, 3, 31, 23, 0, tzinfo=dt.UTC)
