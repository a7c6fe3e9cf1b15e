"""A window of local hours on some days of the week: a campaign's, the settings' default, or a
rule's."""

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class InvalidHours(ValueError):
    """What is wrong, and with which of the hours' fields."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Hours:
    """From `start` (inclusive) to `end` (exclusive), in minutes after local midnight, on
    `days` (0 Monday .. 6 Sunday)."""

    start: int
    end: int
    days: frozenset[int]

    def allows(self, weekday: int, minute: int) -> bool:
        return weekday in self.days and self.start <= minute < self.end

    def intersect(self, other: "Hours") -> "Hours":
        return Hours(max(self.start, other.start), min(self.end, other.end), self.days & other.days)

    def shown(self) -> dict[str, Any]:
        return {
            "start": _clock(self.start),
            "end": _clock(self.end),
            "days": [DAYS[day] for day in sorted(self.days)],
        }


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(field: str, value: object) -> int:
    if not isinstance(value, str) or not _CLOCK.match(value):
        raise InvalidHours(field, f"{value!r} is not a time of day as HH:MM (00:00 to 24:00)")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def parse(start: object, end: object, days: object) -> Hours:
    """Hours from "09:00", "20:00" and ["mon", ...]; raises InvalidHours naming the field."""
    first = _minutes("start", start)
    last = _minutes("end", end)
    if last <= first:
        raise InvalidHours("end", f"end {end!r} is not after start {start!r}")
    if not isinstance(days, list | tuple) or not days:
        raise InvalidHours("days", "days must list at least one of " + ", ".join(DAYS))
    chosen = set()
    for day in days:
        if not isinstance(day, str) or day.lower() not in DAYS:
            raise InvalidHours("days", f"{day!r} is not one of " + ", ".join(DAYS))
        chosen.add(DAYS.index(day.lower()))
    return Hours(first, last, frozenset(chosen))


@lru_cache(maxsize=16)
def from_setting(value: str) -> Hours:
    """CALLING_HOURS: "08:00-21:00" (every day), or "09:00-20:00 mon,tue,wed,thu,fri"."""
    window, _, days = value.strip().partition(" ")
    start, _, end = window.partition("-")
    return parse(start, end, days.split(",") if days.strip() else list(DAYS))


def from_stored(stored: dict[str, Any] | None, default: Hours) -> Hours:
    if not stored:
        return default
    return _stored(stored["start"], stored["end"], tuple(stored["days"]))


@lru_cache(maxsize=4096)
def _stored(start: str, end: str, days: tuple[str, ...]) -> Hours:
    return parse(start, end, list(days))


_ZONES: frozenset[str] | None = None


def valid_zone(name: str) -> str:
    """An IANA time zone name as zoneinfo knows it; raises ValueError otherwise."""
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if name not in _ZONES:
        raise ValueError(f"{name!r} is not an IANA time zone name (such as America/New_York)")
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError:
        raise ValueError(f"{name!r} is not an IANA time zone name") from None
    return name
