"""England's clinical dates: a moment's date is its date in England, not in UTC.

A leaf: it imports nothing else of the project.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def local_date(moment: dt.datetime) -> dt.date:
    """The date in England of an aware moment: 23:30 UTC in summer is the next day's 00:30."""
    return moment.astimezone(LONDON).date()


def local_today() -> dt.date:
    return local_date(dt.datetime.now(dt.UTC))


def long_date(day: dt.date) -> str:
    """A date as people read it on the pages and in messages: "1 December 2026"."""
    return f"{day.day} {day:%B %Y}"
