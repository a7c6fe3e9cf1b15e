"""Twilio's date filters on lists: StartTime and EndTime on calls, DateSent on messages.

As Twilio's description says (tests/specs/twilio_api_v2010.json), each filters by the day, in
UTC, of its own field and nothing else: `StartTime=YYYY-MM-DD` that day, `StartTime>=` on or
after its midnight, `StartTime<=` on or before it. A resource whose field is still empty (a call
not yet dialed has no start_time, a message not yet sent no date_sent, a call that did not
complete no end_time) matches none of them. A value that is no date is refused, as Twilio refuses
one (400, code 20001, "Invalid ..."), rather than ignored: a list that ignored it would answer
more than was asked for.
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


class InvalidFilter(ValueError):
    """A date filter whose value is no date."""

    def __init__(self, parameter: str, raw: str) -> None:
        super().__init__(
            f"Invalid {parameter}: {raw}. {parameter} must be a date in UTC, as YYYY-MM-DD"
        )
        self.parameter = parameter


def by_day(
    items: list[T], query: QueryParams, name: str, moment_of: Callable[[T], datetime | None]
) -> list[T]:
    """The items the query's `name`, `name>` and `name<` filters keep. Raises InvalidFilter
    for a value that is no date."""
    for suffix in ("", ">", "<"):
        raw = query.get(name + suffix)
        if not raw:
            continue
        day = _day(raw)
        if day is None:
            raise InvalidFilter(name + suffix, raw)
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
