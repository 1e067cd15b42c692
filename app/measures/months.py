"""Calendar months, the unit every measure is counted in. Pure: no I/O, no clock."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property

from app.clock import LONDON

_LABEL = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1900 <= self.year <= 9998:
            raise ValueError(f"no such month: {self.year}-{self.month}")

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM``, as in the API's ``from`` and ``to``; ValueError otherwise."""
        match = _LABEL.match(text.strip())
        if not match:
            raise ValueError("must be a month as YYYY-MM, for example 2026-04")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: dt.date) -> Month:
        return cls(day.year, day.month)

    @cached_property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def last_day(self) -> dt.date:
        return self.next().first_day - dt.timedelta(days=1)

    @property
    def index(self) -> int:
        """Months since year 0: differences count months."""
        return self.year * 12 + self.month - 1

    def starts_at(self) -> dt.datetime:
        """Midnight on the 1st in England, as a UTC instant (for timestamps such as opened_at)."""
        return dt.datetime.combine(self.first_day, dt.time(), tzinfo=LONDON).astimezone(dt.UTC)

    def next(self) -> Month:
        return self.plus(1)

    def plus(self, months: int) -> Month:
        index = self.index + months
        return Month(index // 12, index % 12 + 1)

    def __str__(self) -> str:
        return self.label


def months_between(first: Month, last: Month) -> list[Month]:
    """Every month from ``first`` to ``last``, both included."""
    return [first.plus(n) for n in range(last.index - first.index + 1)]
