"""When a stop-smoking service must first contact a woman it has been referred.

Pure: the moment a referral opened and the calendar are passed in; nothing reads the clock.
Working days are England's: Monday to Friday, not an England and Wales bank holiday (the
``holidays`` package, ``country_holidays("GB", subdiv="ENG")``).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import holidays

from app.clock import LONDON

WORKING_DAY_STARTS = dt.time(9, 0)


def england_bank_holidays() -> holidays.HolidayBase:
    """England's bank holidays, including substitute days (Boxing Day observed, and so on)."""
    return holidays.country_holidays("GB", subdiv="ENG")


def is_working_day(day: dt.date, calendar: holidays.HolidayBase) -> bool:
    """Monday to Friday and not a holiday in ``calendar``."""
    return day.weekday() < 5 and day not in calendar


def first_contact_due(
    opened_at: dt.datetime,
    *,
    working_days: int = 1,
    calendar: holidays.HolidayBase | None = None,
    tz: ZoneInfo = LONDON,
    day_starts_at: dt.time = WORKING_DAY_STARTS,
) -> dt.datetime:
    """The moment first contact becomes overdue: ``working_days`` whole working days after opening.

    The rule, in local time (``tz``, Europe/London by default):

    1. A referral opened on a working day starts the clock at once. One opened on a weekend or
       bank holiday is treated as received when the service opens on the next working day, at
       ``day_starts_at`` (09:00), as a service running office hours would count it.
    2. The clock then moves forward ``working_days`` working days (default 1, the service's
       first-contact target), skipping weekends and bank holidays, and keeps the local clock
       time: opened Friday 15:00, due Monday 15:00 (Tuesday if Monday is a bank holiday). Across
       a BST/GMT change the local time stays the same, so the gap in hours differs by one.

    ``opened_at`` must be timezone-aware (``ValueError`` otherwise), as must the result, which
    is in UTC. ``calendar`` defaults to :func:`england_bank_holidays`.
    """
    if opened_at.tzinfo is None or opened_at.utcoffset() is None:
        raise ValueError("opened_at: must be timezone-aware")
    if working_days < 1:
        raise ValueError(f"working_days: must be 1 or more, got {working_days}")
    calendar = england_bank_holidays() if calendar is None else calendar
    local = opened_at.astimezone(tz)
    day, clock = local.date(), local.time()
    if not is_working_day(day, calendar):
        day, clock = _next_working_day(day, calendar), day_starts_at
    for _ in range(working_days):
        day = _next_working_day(day, calendar)
    # Built from the local wall clock, then converted: zoneinfo picks the right offset for the day.
    return dt.datetime.combine(day, clock, tzinfo=tz).astimezone(dt.UTC)


def is_overdue(due_at: dt.datetime, now: dt.datetime) -> bool:
    """True once ``now`` is after ``due_at``; contact exactly at the deadline is on time."""
    for name, value in (("due_at", due_at), ("now", now)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name}: must be timezone-aware")
    return now > due_at


def _next_working_day(day: dt.date, calendar: holidays.HolidayBase) -> dt.date:
    day += dt.timedelta(days=1)
    while not is_working_day(day, calendar):
        day += dt.timedelta(days=1)
    return day
