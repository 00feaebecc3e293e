"""Reference periods of an indicator: ISO weeks (``2024-W10``) and months (``2024-03``).

Invariant: a :class:`Period` is always a whole, valid period; its ``label`` is the
TIME_PERIOD written in the series (SDMX's own notation for weeks and months), and parsing a
label gives back the same period.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from statbox.errors import BadInput

Frequency = Literal["weekly", "monthly"]

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
MONTH = re.compile(r"^(\d{4})-(\d{2})$")
LABEL_PATTERN = r"^\d{4}-(W\d{2}|\d{2})$"
MAX_PERIODS = 1000
"""Most periods :func:`between` gives: a range longer than this is a typo, not a backfill."""


@dataclass(frozen=True, order=True)
class Period:
    """One reference period: ``start`` and ``end`` are its first and last day (inclusive)."""

    start: date
    frequency: Frequency

    @classmethod
    def parse(cls, label: str, frequency: Frequency | None = None) -> Period:
        """The period ``label`` names; BadInput if it is no period (or not of ``frequency``)."""
        week, month = WEEK.match(label), MONTH.match(label)
        try:
            if week and frequency in (None, "weekly"):
                return cls(date.fromisocalendar(int(week[1]), int(week[2]), 1), "weekly")
            if month and frequency in (None, "monthly"):
                return cls(date(int(month[1]), int(month[2]), 1), "monthly")
        except ValueError:
            pass
        example = {"weekly": "2024-W10", "monthly": "2024-03", None: "2024-W10 or 2024-03"}
        raise BadInput(f"{label!r} is not a period: write it like {example[frequency]}")

    @classmethod
    def containing(cls, day: date, frequency: Frequency) -> Period:
        if frequency == "weekly":
            return cls(day - timedelta(days=day.isoweekday() - 1), "weekly")
        return cls(day.replace(day=1), "monthly")

    @property
    def end(self) -> date:
        if self.frequency == "weekly":
            return self.start + timedelta(days=6)
        days = calendar.monthrange(self.start.year, self.start.month)[1]
        return self.start.replace(day=days)

    @property
    def label(self) -> str:
        if self.frequency == "weekly":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start.year}-{self.start.month:02d}"

    def next(self) -> Period:
        return Period.containing(self.end + timedelta(days=1), self.frequency)

    def previous(self) -> Period:
        return Period.containing(self.start - timedelta(days=1), self.frequency)

    def field(self, name: str) -> str:
        """A notebook parameter's value: ``label``, ``start`` or ``end`` (ISO dates)."""
        return {"label": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}[
            name
        ]

    def __str__(self) -> str:
        return self.label


def latest_complete(frequency: Frequency, now: datetime, tz: str) -> Period:
    """The last period wholly over at ``now`` in time zone ``tz``."""
    today = now.astimezone(ZoneInfo(tz)).date()
    return Period.containing(today, frequency).previous()


def between(first: str, last: str, frequency: Frequency | None = None) -> list[Period]:
    """Every period from ``first`` to ``last`` inclusive; BadInput if the range is empty or
    longer than :data:`MAX_PERIODS`."""
    start = Period.parse(first, frequency)
    end = Period.parse(last, start.frequency)
    if end < start:
        raise BadInput(f"--last {last} is before --first {first}")
    periods = [start]
    while periods[-1] < end:
        if len(periods) >= MAX_PERIODS:
            raise BadInput(f"{first} to {last} is more than {MAX_PERIODS} periods")
        periods.append(periods[-1].next())
    return periods
