"""The rules applied to calls and campaigns as they are stored: the clock is read here, once
per decision, and passed to the rule."""

from collections.abc import Sequence
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
    campaign_id: str
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
    attempts: Sequence[tuple[str, datetime]] | None = None,
) -> rules.Verdict:
    """`attempts`: the account's calls to the number placed lately, (campaign, when), for the
    caps on calls to one number; None where the caps are not looked at (they are at the claim,
    which counts under the account's lock)."""
    settings = get_settings()
    place = rules.place_of(
        call.to_number, call.timezone, default_timezone, rules_on=settings.CALLING_RULES
    )
    waits = [] if attempts is None else caps(place, call.campaign_id, attempts, now)
    return rules.decide(
        place,
        campaign_hours(calling_hours),
        now,
        start_at=call.start_at,
        not_after=call.not_after,
        waits=waits,
    )


def caps(
    place: rules.Place,
    campaign_id: str,
    attempts: Sequence[tuple[str, datetime]],
    now: datetime,
) -> list[rules.Wait]:
    """MAX_CALLS_PER_NUMBER_PER_DAY calls to one number per account in any 24 hours, and a
    state's own cap on calls on the same subject (a campaign is the subject)."""
    limit = get_settings().MAX_CALLS_PER_NUMBER_PER_DAY
    waits = []
    opens = rules.cap_opens([at for _, at in attempts], limit, now)
    if opens is not None:
        reason = f"{limit} calls to this number in the last 24 hours"
        waits.append(rules.Wait(opens, reason, "MAX_CALLS_PER_NUMBER_PER_DAY"))
    for rule in place.rules:
        state_limit = rule["max_calls_per_24h"]
        if state_limit is None:
            continue
        same = [at for campaign, at in attempts if campaign == campaign_id]
        opens = rules.cap_opens(same, state_limit, now)
        if opens is not None:
            reason = f"{state_limit} calls to this number on this campaign in the last 24 hours"
            waits.append(rules.Wait(opens, reason, rule["key"]))
    return waits


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
