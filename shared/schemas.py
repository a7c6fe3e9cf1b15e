"""Text every request model and parameter is read with: what may reach a phone (TwiML, SMS)
or the database.

A control character makes TwiML not well-formed (the callee hears Twilio's application error),
a NUL byte makes PostgreSQL raise, and a lone surrogate cannot be encoded as UTF-8 at all: each
is refused with a 422 naming the field. Multi-line text (a script, a message) may hold tabs and
line breaks; a single line (a name, a number, an id) holds none.
"""

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from shared.telephony import twiml

# Line breaks and tabs: the only control characters XML 1.0 and an SMS carry as text.
_LINE_BREAKS = frozenset("\t\n\r")
# Not characters at all in XML 1.0: a document holding one is not well-formed.
_NON_CHARACTERS = frozenset("\ufffe\uffff")


def text_problem(text: str, *, multiline: bool = False) -> str | None:
    """Why this text cannot be stored or spoken, or None. The character is named by its code
    point: echoing it would carry the problem into the answer."""
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cc" and not (multiline and char in _LINE_BREAKS):
            what = "a control character"
        elif category == "Cs":
            what = "a lone surrogate"
        elif char in _NON_CHARACTERS:
            what = "a non-character"
        else:
            continue
        return f"must not contain {what} (U+{ord(char):04X} at position {position})"
    return None


def _checker(multiline: bool):  # type: ignore[no-untyped-def]
    def check(text: str) -> str:
        problem = text_problem(text, multiline=multiline)
        if problem is not None:
            raise PydanticCustomError("text_character", problem)
        return text

    return check


Line = Annotated[str, AfterValidator(_checker(multiline=False))]
"""One line of text: a name, a number, an id, a key."""

Prose = Annotated[str, AfterValidator(_checker(multiline=True))]
"""Text that may run over lines: a script, a message."""


def _not_a_boolean(value: object) -> object:
    # pydantic reads true as 1: a number of minutes or credits sent as a boolean is a mistake.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer, not a boolean")
    return value


Count = Annotated[int, BeforeValidator(_not_a_boolean)]
"""A whole number a client sends: minutes, calls, credits."""

NAME_MAX_LENGTH = 200


def _moment(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise PydanticCustomError(
            "timezone_aware", "give the time with its offset (2026-01-01T12:00:00Z)"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is before year 1 in UTC, which the database is given.
        raise PydanticCustomError(
            "datetime_range", "the time falls outside years 1 to 9999 in UTC"
        ) from None


Moment = Annotated[datetime, AfterValidator(_moment)]
"""A time with its offset, in UTC: a filter's `since`."""

CalleeName = Annotated[Line, Field(max_length=NAME_MAX_LENGTH)]
"""The name a script's {name} is filled in with."""

PhoneNumber = Annotated[Line, Field(min_length=1, max_length=64)]
CampaignName = Annotated[Line, Field(min_length=1, max_length=200)]


def _speakable(script: str) -> str:
    problem = twiml.script_problem(script, NAME_MAX_LENGTH)
    if problem is not None:
        raise PydanticCustomError("script_too_long", problem)
    return script


Script = Annotated[
    Prose, Field(min_length=1, max_length=twiml.SAY_MAX_CHARACTERS), AfterValidator(_speakable)
]
"""A campaign's script: what <Say> speaks with each {name} filled in, within Twilio's limits
whatever the callee's name."""


def _zone(name: str) -> str:
    from shared.calling_hours.hours import valid_zone

    try:
        return valid_zone(name)
    except ValueError as exc:
        raise PydanticCustomError("time_zone", str(exc)) from None


# An IANA time zone name, as zoneinfo knows it.
TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_zone)]
# How far ahead a call may be scheduled: farther is a typo more likely than a plan, and the
# calendar's end is near enough at year 9999 that a zone's local time would overflow.
SCHEDULE_AHEAD_DAYS = 366
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def _within_reach(value: datetime) -> datetime:
    if value < _EARLIEST:
        raise PydanticCustomError("time_range", "give a time after 2000-01-01")
    if value > datetime.now(UTC) + timedelta(days=SCHEDULE_AHEAD_DAYS):
        raise PydanticCustomError(
            "time_range", f"give a time within {SCHEDULE_AHEAD_DAYS} days from now"
        )
    return value


# A call's startAt or notAfter: with its offset (a time without one would be read in some zone
# nobody chose), within reach.
OffsetTime = Annotated[Moment, AfterValidator(_within_reach)]


def check_not_after(not_after: datetime | None, start_at: datetime | None) -> datetime | None:
    if not_after is not None and start_at is not None and not_after <= start_at:
        raise PydanticCustomError("not_after", "notAfter must be later than startAt")
    return not_after
