"""The one answer to "when may this call be placed": now, not before a moment (and why, by
which rule), or never (expired). Pure: the caller passes the clock's `now`.

A number's local time comes from phonenumbers' time-zone data; a `timezone` given with the call
is one more zone it must be within its hours in (the law presumes the owner is where the area
code is, so a zone given only narrows), and the one zone of a number tied to no place. A number
that may be in several zones must be within its hours in all of them. A
number valid across a whole country (toll-free, and any other not tied to a place) is taken to
be in the campaign's `defaultTimezone` when it has one, otherwise, for a North American number,
in every zone of the contiguous United States (New York, Chicago, Denver, Los Angeles: Phoenix
always matches one of them), and otherwise in every zone phonenumbers gives its country. A
state's rules apply by the state phonenumbers' geocoder names for the number, as Florida and
Oklahoma presume a resident from the area code.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as number_zones
from phonenumbers.geodata import GEOCODE_DATA, GEOCODE_LONGEST_PREFIX
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from shared.calling_hours.hours import DAYS, Hours, parse
from shared.calling_hours.overlays import OVERLAYS
from shared.calling_hours.rules_table import RULES, Rule

CONTIGUOUS_US = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
_UNKNOWN = "Etc/Unknown"
# How far ahead an opening is looked for: a week and its changes of clocks, twice.
_HORIZON_DAYS = 15

DAY = timedelta(hours=24)

NOW = "now"
WAIT = "wait"
EXPIRED = "expired"


@dataclass(frozen=True)
class Place:
    """Where the law and the clocks see a number: its time zones, whence they came, and the
    rules of the table that apply to it."""

    zones: tuple[str, ...]
    zones_from: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Verdict:
    kind: str
    at: datetime | None = None
    reason: str | None = None
    rule: str | None = None


def _number_facts(number: str) -> tuple[tuple[str, ...], bool, str, str]:
    """The number's zones as phonenumbers gives them, whether it is tied to a place, its
    region, and its English description (the state, for a US number)."""
    key = number[:8] if number.startswith("+1") else number
    found = _FACTS.get(key)
    if found is None:
        if len(_FACTS) >= _FACTS_KEPT:
            _FACTS.clear()
        found = _FACTS[key] = _nanp_facts(number) if number.startswith("+1") else _facts(number)
    return found


_FACTS: dict[str, tuple[tuple[str, ...], bool, str, str]] = {}
_FACTS_KEPT = 100_000
_NANP_REGIONS: dict[str, str] = {}


def _facts(number: str) -> tuple[tuple[str, ...], bool, str, str]:
    parsed = phonenumbers.parse(number)
    zones = tuple(z for z in number_zones.time_zones_for_number(parsed) if z != _UNKNOWN)
    geographic = phonenumbers.is_number_geographical(parsed)
    region = phonenumbers.region_code_for_number(parsed) or ""
    return zones, geographic, region, geocoder.description_for_number(parsed, "en")


def _longest(data: dict[str, Any], digits: str, longest: int, shortest: int) -> Any:
    for length in range(min(longest, len(digits)), shortest - 1, -1):
        found = data.get(digits[:length])
        if found:
            return found
    return None


def _nanp_facts(number: str) -> tuple[tuple[str, ...], bool, str, str]:
    """The same for a North American number (valid, in E.164), read from phonenumbers' own
    prefix tables: its time-zone and place data go no deeper than the area code and exchange
    (+1 and six digits), and each area code is one country's, so a batch's numbers cost one
    table look each, where the library's per-number calls, which work out the number's type
    again for each, cost about 0.2 ms a number (4 s for 20,000 numbers of different
    exchanges). A number whose zones are only North America's as a whole (toll-free, personal,
    premium: no longer prefix) is tied to no place, as the library's number types say.
    tests/calling_hours/test_rules.py checks these against the library's calls."""
    area = number[:5]
    if area not in _NANP_REGIONS:
        _NANP_REGIONS[area] = phonenumbers.region_code_for_number(phonenumbers.parse(number)) or ""
    region = _NANP_REGIONS[area]
    if region not in ("US", "CA"):
        # The Caribbean's numbers: mobiles are not geographic there, as the library says.
        return _facts(number)
    digits = number[1:]
    zones = _longest(TIMEZONE_DATA, digits, TIMEZONE_LONGEST_PREFIX, 2) or ()
    zones = tuple(z for z in zones if z != _UNKNOWN)
    overlaid = OVERLAYS.get(number[2:5])
    if zones and overlaid:
        zones = tuple(dict.fromkeys((*zones, *_area_zones(overlaid))))
    place = _longest(GEOCODE_DATA, digits, GEOCODE_LONGEST_PREFIX, 2) or {}
    return zones, bool(zones), region, place.get("en", "") if zones else ""


_AREA_ZONES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _area_zones(area_codes: tuple[str, ...]) -> tuple[str, ...]:
    """Every zone phonenumbers gives any number of these area codes."""
    if area_codes not in _AREA_ZONES:
        prefixes = tuple("1" + code for code in area_codes)
        found = {
            zone
            for prefix, zones in TIMEZONE_DATA.items()
            if prefix.startswith(prefixes)
            for zone in zones
            if zone != _UNKNOWN
        }
        _AREA_ZONES[area_codes] = tuple(sorted(found))
    return _AREA_ZONES[area_codes]


def _state_rules(region: str, description: str) -> tuple[Rule, ...]:
    applying = []
    for rule in RULES:
        if region not in rule["countries"]:
            continue
        if (
            rule["state"] is None
            or description == rule["state_name"]
            or description.endswith(f", {rule['state']}")
        ):
            applying.append(rule)
    return tuple(applying)


def place_of(
    number: str, timezone: str | None, default_timezone: str | None, *, rules_on: bool
) -> Place:
    zones, geographic, region, description = _number_facts(number)
    rules = _state_rules(region, description) if rules_on else ()
    if zones and geographic:
        if timezone and timezone not in zones:
            # The law presumes the owner is where the number's area code is (Florida's and
            # Oklahoma's statutes say so): a zone given with the call adds a place the owner
            # may be, and never takes the number's own away, so no zone given can make 08:00
            # in New York a call at 05:00 to a Los Angeles number.
            return Place((*zones, timezone), "number and timezone", rules)
        return Place(zones, "number", rules)
    if timezone:
        # Tied to no place: the zone given is all that is known of where its owner is.
        return Place((timezone,), "timezone", rules)
    if default_timezone:
        return Place((default_timezone,), "defaultTimezone", rules)
    if number.startswith("+1"):
        return Place(CONTIGUOUS_US, "contiguous US", rules)
    return Place(zones or ("UTC",), "number" if zones else "UTC", rules)


# Each rule's windows: a moment is within the rule when it is within any one of them (Canada's
# weekdays and its weekends keep different hours).
_RULE_HOURS = {
    rule["key"]: tuple(
        parse(start, end, list(days))
        for days, start, end in ((rule["days"], rule["start"], rule["end"]), *rule.get("also", ()))
    )
    for rule in RULES
}
Windows = tuple[Hours, ...]


def _rule_hours(rule: Rule) -> Windows:
    return _RULE_HOURS[rule["key"]]


def _local(at: datetime, zone: str) -> tuple[int, int, datetime]:
    local = at.astimezone(ZoneInfo(zone))
    return local.weekday(), local.hour * 60 + local.minute, local


def _allowed(limits: Sequence[Windows], zones: tuple[str, ...], at: datetime) -> bool:
    """Within one window of each limit, in every zone."""
    for zone in zones:
        weekday, minute, _ = _local(at, zone)
        if not all(any(w.allows(weekday, minute) for w in windows) for windows in limits):
            return False
    return True


def _shown(windows: Windows) -> str:
    return " or ".join(
        f"{shown['start']}-{shown['end']} on {','.join(shown['days'])}"
        for shown in (hours.shown() for hours in windows)
    )


def _why(campaign: Hours, place: Place, at: datetime) -> tuple[str, str]:
    """The first of the campaign's hours and the rules that `at` falls outside, in the first
    zone it falls outside in: (reason, rule)."""
    # The law's rules first: where both forbid the moment, the law is the reason.
    named: list[tuple[str, Windows]] = [(rule["key"], _rule_hours(rule)) for rule in place.rules]
    named.append(("callingHours", (campaign,)))
    for zone in place.zones:
        weekday, minute, local = _local(at, zone)
        for name, windows in named:
            if not any(hours.allows(weekday, minute) for hours in windows):
                return (
                    f"{local:%H:%M} {DAYS[weekday]} in {zone} is outside {_shown(windows)}",
                    name,
                )
    return ("outside its calling hours", "callingHours")


@dataclass(frozen=True)
class Wait:
    """A moment the call may not be placed before, besides its hours: its startAt, or when a
    cap on calls to its number lets one more through."""

    until: datetime
    reason: str
    rule: str


def cap_opens(attempts: Sequence[datetime], limit: int, now: datetime) -> datetime | None:
    """The first moment from `now` at which fewer than `limit` of `attempts` fall in the 24
    hours before it; None when that is now."""
    recent = sorted(at for at in attempts if at > now - DAY)
    if len(recent) < limit:
        return None
    # The oldest attempts must leave the window until only limit - 1 are left in it.
    return recent[len(recent) - limit] + DAY


def decide(
    place: Place,
    campaign: Hours,
    now: datetime,
    *,
    start_at: datetime | None = None,
    not_after: datetime | None = None,
    waits: Sequence[Wait] = (),
) -> Verdict:
    if not_after is not None and now >= not_after:
        return Verdict(EXPIRED, not_after, "not placed by its notAfter", "notAfter")
    earliest, reason, rule = now, "", ""
    if start_at is not None:
        waits = [Wait(start_at, "its startAt", "startAt"), *waits]
    for wait in waits:
        if wait.until > earliest:
            earliest, reason, rule = wait.until, wait.reason, wait.rule
    hours = campaign
    by_day: list[Windows] = []
    for law in place.rules:
        windows = _rule_hours(law)
        if len(windows) == 1:
            hours = hours.intersect(windows[0])
        else:
            by_day.append(windows)
    limits = [(hours,), *by_day]
    if _allowed(limits, place.zones, earliest):
        at = earliest
    else:
        outside, hours_rule = _why(campaign, place, earliest)
        # A wait (a start, a cap) that ends outside the hours: it is the first reason.
        reason, rule = (f"{reason}; then {outside}", rule) if rule else (outside, hours_rule)
        found = _opening(limits, place.zones, earliest)
        if found is None:
            return Verdict(EXPIRED, now, f"{reason}, and its hours never open", rule)
        at = found
    if at <= now:
        return Verdict(NOW)
    if not_after is not None and at >= not_after:
        return Verdict(WAIT, not_after, f"{reason}; its hours open only after notAfter", rule)
    return Verdict(WAIT, at, reason, rule)


def _opening(limits: Sequence[Windows], zones: tuple[str, ...], after: datetime) -> datetime | None:
    """The first moment after `after` within one window of each limit in every zone: an
    intersection of windows begins where the last of them opens, so it is one window's
    opening in one zone."""
    merged = limits[0][0]
    if merged.end <= merged.start or not merged.days:
        return None
    starts = {hours.start for windows in limits for hours in windows}
    candidates = set()
    for zone in zones:
        tz = ZoneInfo(zone)
        first_day = after.astimezone(tz).date()
        for offset in range(-1, _HORIZON_DAYS):
            day = first_day + timedelta(days=offset)
            for start in starts:
                opens = datetime(day.year, day.month, day.day, start // 60, start % 60, tzinfo=tz)
                # Round trip: a local time the clocks skip becomes the moment after the skip.
                opens = opens.astimezone(ZoneInfo("UTC"))
                if opens > after:
                    candidates.add(opens)
    for candidate in sorted(candidates):
        if _allowed(limits, zones, candidate):
            return candidate
    return None
