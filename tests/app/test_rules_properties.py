"""Property tests for the NHS number and the pregnancy's date rules."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nhs_number.validate import calculate_checksum

from app.pregnancies import service as pregnancies
from app.pregnancies.models import Pregnancy
from app.pregnancies.nhs_number import InvalidNhsNumberError, normalise_nhs_number

ENGLAND = st.integers(min_value=400_000_000, max_value=799_999_999).filter(
    lambda n: not 500_000_000 <= n <= 599_999_999
)


def _with_check_digit(first_nine: str) -> str | None:
    check = calculate_checksum(first_nine)
    return None if check is None or check == 10 else first_nine + str(check)


@given(ENGLAND, st.booleans())
def test_every_well_formed_english_number_is_accepted_spaced_or_not(
    prefix: int, spaced: bool
) -> None:
    number = _with_check_digit(f"{prefix:09d}")
    if number is None or len(set(number)) == 1:
        return
    text = f"{number[:3]} {number[3:6]} {number[6:]}" if spaced else number
    assert normalise_nhs_number(text, allow_synthetic=False) == number


@given(ENGLAND, st.integers(min_value=0, max_value=9), st.integers(min_value=1, max_value=9))
def test_any_single_mistyped_digit_is_caught(prefix: int, position: int, shift: int) -> None:
    number = _with_check_digit(f"{prefix:09d}")
    if number is None:
        return
    typo = number[:position] + str((int(number[position]) + shift) % 10) + number[position + 1 :]
    with pytest.raises(InvalidNhsNumberError):
        normalise_nhs_number(typo, allow_synthetic=False)


@given(st.integers(min_value=900_000_000, max_value=999_999_999))
def test_synthetic_numbers_follow_the_setting(prefix: int) -> None:
    number = _with_check_digit(f"{prefix:09d}")
    if number is None:
        return
    assert normalise_nhs_number(number, allow_synthetic=True) == number
    with pytest.raises(InvalidNhsNumberError, match="synthetic"):
        normalise_nhs_number(number, allow_synthetic=False)


@given(st.text(max_size=14))
def test_nothing_but_ten_digits_gets_through(text: str) -> None:
    try:
        digits = normalise_nhs_number(text, allow_synthetic=True)
    except InvalidNhsNumberError:
        return
    assert len(digits) == 10 and digits.isascii() and digits.isdigit()


DATES = st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2035, 12, 31))


@given(DATES, st.integers(min_value=-400, max_value=400))
def test_gestation_is_280_days_minus_the_days_to_the_due_date(due: dt.date, offset: int) -> None:
    pregnancy = Pregnancy(estimated_due_date=due)
    on = due + dt.timedelta(days=offset)
    assert pregnancies.gestation_days(pregnancy, on) == 280 + offset


@given(DATES, st.one_of(st.none(), st.integers(-60, 20)))
def test_a_pregnancy_runs_from_280_days_before_due_to_its_end(
    due: dt.date, born_offset: int | None
) -> None:
    born_on = None if born_offset is None else due + dt.timedelta(days=born_offset)
    pregnancy = Pregnancy(estimated_due_date=due, born_on=born_on)
    assert pregnancies.starts_on(pregnancy) == due - dt.timedelta(days=280)
    expected_end = born_on if born_on is not None else due + dt.timedelta(days=28)
    assert pregnancies.antenatal_ends_on(pregnancy) == expected_end
