"""Freeze windows of ``.promoter.yaml``: weekly ones (days, HH:MM to HH:MM, a zone)
and absolute ones (start inclusive, end exclusive). Pure: ``contains(now)`` takes the
time it is asked about."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timezone, tzinfo
from zoneinfo import ZoneInfo

from promoter.errors import PromoteError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def zone(name: str) -> tzinfo:
    """The time zone called ``name`` (``UTC`` works even without a tz database)."""
    if name == "UTC":
        return timezone.utc
    return ZoneInfo(name)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise PromoteError("internal error: policy time must be timezone-aware")
    return now


@dataclass(frozen=True)
class WeeklyFreeze:
    """Every week on ``days`` (0 = Monday) from ``start`` to ``end`` (minutes inclusive)."""

    days: frozenset[int]
    start: time
    end: time
    tz: str = "UTC"

    def contains(self, now: datetime) -> bool:
        local = _aware(now).astimezone(zone(self.tz))
        minute = local.hour * 60 + local.minute
        first = self.start.hour * 60 + self.start.minute
        last = self.end.hour * 60 + self.end.minute
        day = local.weekday()
        if first <= last:
            return day in self.days and first <= minute <= last
        # Crosses midnight: opened on a listed day, or still open from the day before.
        return (day in self.days and minute >= first) or (
            (day - 1) % 7 in self.days and minute <= last
        )

    def describe(self) -> str:
        days = "every day" if len(self.days) == 7 else ", ".join(DAYS[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M} {self.tz}"


@dataclass(frozen=True)
class AbsoluteFreeze:
    """From ``start`` (inclusive) to ``end`` (exclusive); both timezone-aware."""

    start: datetime
    end: datetime

    def contains(self, now: datetime) -> bool:
        return self.start <= _aware(now) < self.end

    def describe(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


Freeze = WeeklyFreeze | AbsoluteFreeze
