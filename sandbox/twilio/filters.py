"""Twilio's date filters on lists: StartTime and EndTime on calls, DateSent on messages.

As Twilio's description says (tests/specs/twilio_api_v2010.json), each filters by the day, in
UTC, of its own field and nothing else: `StartTime=YYYY-MM-DD` that day, `StartTime>=` on or
after its midnight, `StartTime<=` on or before it. A resource whose field is still empty (a call
not yet dialed has no start_time, a message not yet sent no date_sent) matches none of them.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from email.utils import parsedate_to_datetime
from typing import TypeVar

from starlette.datastructures import QueryParams

T = TypeVar("T")


def _day(raw: str) -> date | None:
    """The UTC day a filter value names: a date, or a moment (ISO 8601 or RFC 2822)."""
    for parse in (datetime.fromisoformat, parsedate_to_datetime):
        try:
            moment = parse(raw.replace("Z", "+00:00") if parse is datetime.fromisoformat else raw)
        except (TypeError, ValueError):
            continue
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()
    return None


def by_day(
    items: list[T], query: QueryParams, name: str, moment_of: Callable[[T], datetime | None]
) -> list[T]:
    """The items the query's `name`, `name>` and `name<` filters keep."""
    for suffix in ("", ">", "<"):
        raw = query.get(name + suffix)
        day = _day(raw) if raw else None
        if day is None:
            continue
        midnight = datetime.combine(day, time(), UTC)
        kept: list[T] = []
        for item in items:
            moment = moment_of(item)
            if moment is None:
                continue
            if (
                (suffix == "" and moment.astimezone(UTC).date() == day)
                or (suffix == ">" and moment >= midnight)
                or (suffix == "<" and moment <= midnight)
            ):
                kept.append(item)
        items = kept
    return items
