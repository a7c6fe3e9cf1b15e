"""The rules applied to calls and campaigns as they are stored: the clock is read here, once
per decision, and passed to the rule."""

from datetime import datetime
from typing import Any, Protocol

from shared.calling_hours import clock, hours, rules
from shared.config import get_settings


class NeverPlaced(ValueError):
    """A call that its rules would never let be placed: refused when it is accepted."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Timed(Protocol):
    """What of a call decides when it may be placed."""

    to_number: str
    timezone: str | None
    start_at: datetime | None
    not_after: datetime | None


def default_hours() -> hours.Hours:
    return hours.from_setting(get_settings().CALLING_HOURS)


def campaign_hours(stored: dict[str, Any] | None) -> hours.Hours:
    return hours.from_stored(stored, default_hours())


def verdict(
    call: Timed,
    calling_hours: dict[str, Any] | None,
    default_timezone: str | None,
    now: datetime,
) -> rules.Verdict:
    place = rules.place_of(
        call.to_number, call.timezone, default_timezone, rules_on=get_settings().CALLING_RULES
    )
    return rules.decide(
        place,
        campaign_hours(calling_hours),
        now,
        start_at=call.start_at,
        not_after=call.not_after,
    )


def now() -> datetime:
    return clock.now()


def on_acceptance(found: rules.Verdict) -> dict[str, Any]:
    """What a new call stores from its verdict: the moment it waits for, and why. Raises
    NeverPlaced for one its rules would never let be placed."""
    if found.kind == rules.EXPIRED:
        field = "notAfter" if found.rule == "notAfter" else "callingHours"
        raise NeverPlaced(field, f"the call would never be placed: {found.reason}")
    if found.kind == rules.NOW:
        return {"not_before": None, "hold_reason": None, "hold_rule": None}
    return {"not_before": found.at, "hold_reason": found.reason, "hold_rule": found.rule}
