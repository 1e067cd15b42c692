"""First contact is due N working days after a referral opens, on England's calendar."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import holidays
import pytest

from referral.sla import first_contact_due, is_overdue, is_working_day

LONDON = ZoneInfo("Europe/London")


def london(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        # A plain weekday: the next working day at the same time.
        (london(2026, 6, 9, 14, 30), london(2026, 6, 10, 14, 30)),
        # Friday to Monday.
        (london(2026, 6, 12, 16, 0), london(2026, 6, 15, 16, 0)),
        # Spring Bank Holiday, Monday 25 May 2026.
        (london(2026, 5, 22, 15, 0), london(2026, 5, 26, 15, 0)),
        # Christmas Day (Friday) and Boxing Day observed (Monday 28 December 2026).
        (london(2026, 12, 24, 11, 0), london(2026, 12, 29, 11, 0)),
        # Opened on a Saturday: counted from 09:00 on Monday.
        (london(2026, 6, 13, 10, 0), london(2026, 6, 16, 9, 0)),
        # Opened late on a Sunday night: still counted from 09:00 on Monday.
        (london(2026, 6, 14, 23, 59), london(2026, 6, 16, 9, 0)),
        # Opened on the bank holiday itself: counted from 09:00 on Tuesday.
        (london(2026, 5, 25, 8, 0), london(2026, 5, 27, 9, 0)),
        # Clocks go back on Sunday 25 October 2026: same local time, BST to GMT.
        (london(2026, 10, 23, 10, 0), london(2026, 10, 26, 10, 0)),
        # Clocks go forward on Sunday 29 March 2026: GMT to BST.
        (london(2026, 3, 27, 10, 0), london(2026, 3, 30, 10, 0)),
    ],
)
def test_first_contact_due_one_working_day(opened: dt.datetime, due: dt.datetime) -> None:
    result = first_contact_due(opened)
    assert result == due
    assert result.tzinfo is dt.UTC


def test_clock_change_keeps_local_time_so_utc_moves() -> None:
    due = first_contact_due(london(2026, 10, 23, 10, 0))
    assert due == dt.datetime(2026, 10, 26, 10, 0, tzinfo=dt.UTC)  # 09:00 UTC when opened


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        (london(2026, 6, 9, 14, 30), london(2026, 6, 11, 14, 30)),
        (london(2026, 5, 22, 15, 0), london(2026, 5, 27, 15, 0)),
        (london(2026, 12, 23, 9, 15), london(2026, 12, 29, 9, 15)),
        (london(2026, 6, 13, 10, 0), london(2026, 6, 17, 9, 0)),
    ],
)
def test_first_contact_due_two_working_days(opened: dt.datetime, due: dt.datetime) -> None:
    assert first_contact_due(opened, working_days=2) == due


def test_opened_at_in_utc_is_read_as_london_time() -> None:
    # 23:30 UTC on Friday 22 May is 00:30 on Saturday in London (BST): a weekend referral.
    opened = dt.datetime(2026, 5, 22, 23, 30, tzinfo=dt.UTC)
    assert first_contact_due(opened) == london(2026, 5, 27, 9, 0)


def test_a_custom_calendar_adds_local_closures() -> None:
    calendar = holidays.country_holidays("GB", subdiv="ENG")
    calendar.update({dt.date(2026, 6, 10): "Service training day"})
    assert first_contact_due(london(2026, 6, 9, 14, 30), calendar=calendar) == london(
        2026, 6, 11, 14, 30
    )


def test_naive_opened_at_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^opened_at: must be timezone-aware"):
        first_contact_due(dt.datetime(2026, 6, 9, 14, 30))


@pytest.mark.parametrize("working_days", [0, -1])
def test_working_days_must_be_at_least_one(working_days: int) -> None:
    with pytest.raises(ValueError, match=r"^working_days: "):
        first_contact_due(london(2026, 6, 9, 14, 30), working_days=working_days)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (dt.date(2026, 5, 22), True),
        (dt.date(2026, 5, 23), False),
        (dt.date(2026, 5, 25), False),
        (dt.date(2026, 12, 28), False),
        (dt.date(2026, 12, 29), True),
    ],
)
def test_is_working_day(day: dt.date, working: bool) -> None:
    assert is_working_day(day, holidays.country_holidays("GB", subdiv="ENG")) is working


@pytest.mark.parametrize(
    ("now", "overdue"),
    [
        (london(2026, 5, 26, 14, 59), False),
        (london(2026, 5, 26, 15, 0), False),
        (london(2026, 5, 26, 15, 1), True),
    ],
)
def test_is_overdue(now: dt.datetime, overdue: bool) -> None:
    assert is_overdue(london(2026, 5, 26, 15, 0), now) is overdue


def test_is_overdue_rejects_naive_times() -> None:
    with pytest.raises(ValueError, match=r"^now: "):
        is_overdue(london(2026, 5, 26, 15, 0), dt.datetime(2026, 5, 26, 15, 1))
