"""`exhale demo-data` makes a population the measures can count; `measures export` prints it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os

import pytest

from app.measures import demo, rollup
from tests.helpers import invoke_exhale


def exhale(*args: str) -> tuple[int, str, str]:
    ran = invoke_exhale(*args, env=os.environ)  # the database the fixture put in the environment
    return ran.returncode, ran.stdout, ran.stderr


@pytest.fixture
def database(fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EXHALE_DATABASE_URL", fresh_database_url)
    return fresh_database_url


def test_demo_data_then_the_export(database: str) -> None:
    assert exhale("bootstrap")[0] == 0
    code, out, err = exhale("demo-data", "--pregnancies", "300", "--months", "6")
    assert code == 0, err
    assert "Added 300 pregnancies at 1 unit(s)" in out

    code, out, err = exhale("measures", "export", "--suppress-below", "0")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["unit_code"] for r in rows} == {"DEMO1"}
    assert len(rows) == 12 * 17
    booking = [r for r in rows if r["measure"] == "smoking_at_booking"]
    booked = sum(int(r["denominator"]) + int(r["unknown"]) for r in booking)
    assert 250 <= booked <= 300  # bookings after today are not made
    smokers = sum(int(r["numerator"]) for r in booking)
    assert 0.04 < smokers / booked < 0.25

    # The stored counts, once brought up to date, say what the recount said.
    code, refreshed, err = exhale("measures", "refresh")
    assert code == 0, err
    assert refreshed.startswith(f"Recounted {rollup.KEPT_MONTHS} unit-months")
    assert exhale("measures", "export", "--suppress-below", "0")[1] == out
    # A second demo load marks the unit again: the export counts both loads.
    code, _out, err = exhale("demo-data", "--pregnancies", "100", "--seed", "2")
    assert code == 0, err
    again = exhale("measures", "export", "--suppress-below", "0")[1]
    rows = list(csv.DictReader(io.StringIO(again)))
    booking = [r for r in rows if r["measure"] == "smoking_at_booking"]
    assert sum(int(r["denominator"]) + int(r["unknown"]) for r in booking) > booked


def test_the_export_names_a_bad_option(database: str) -> None:
    code, _out, err = exhale("measures", "export", "--from", "2026-05", "--to", "2026-01")
    assert code == 2
    assert err.strip().startswith("exhale: --to: 2026-01 is before from")


def test_synthetic_nhs_numbers_pass_the_check_digit() -> None:
    from app.pregnancies.nhs_number import normalise_nhs_number

    numbers = demo.nhs_numbers(1)
    for _ in range(50):
        number = next(numbers)
        assert normalise_nhs_number(number, allow_synthetic=True) == number


def test_the_generator_makes_nothing_after_today() -> None:
    ids = demo.Ids()
    today = dt.date(2026, 3, 31)
    for batch in demo.generate(
        [demo.DemoUnit(1, 2)],
        pregnancies=500,
        first_booking=dt.date(2025, 10, 1),
        months=12,
        today=today,
        ids=ids,
    ):
        assert all(row[3] <= today for row in batch["contact"])
        assert all(row[3].date() <= today for row in batch["co_reading"])
        assert all(row[4] is None or row[4] <= today for row in batch["pregnancy"])
        assert all(row[6].date() <= today for row in batch["referral_event"])
