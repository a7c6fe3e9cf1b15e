"""When a call may be placed, decided against a clock the test sets: local hours in the
number's zones, across the changes of clocks, with the law's rules of its state."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.calling_hours import hours, rules
from shared.calling_hours.overlays import OVERLAYS

EVERY_DAY = hours.from_setting("08:00-21:00")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def decide(
    number: str,
    now: datetime,
    campaign: hours.Hours = EVERY_DAY,
    *,
    timezone: str | None = None,
    default_timezone: str | None = None,
    rules_on: bool = True,
    **times: datetime,
) -> rules.Verdict:
    place = rules.place_of(number, timezone, default_timezone, rules_on=rules_on)
    return rules.decide(place, campaign, now, **times)


NEW_YORK = "+12125550100"
LOS_ANGELES = "+14155552671"
CHICAGO = "+13125550100"
MIAMI = "+13055551234"
OKLAHOMA_CITY = "+14055551234"
TULSA = "+19185550100"
BOISE = "+12085550100"  # Idaho: Mountain in the south, Pacific in the north
TOLL_FREE = "+18005551234"


class TestDaylightSaving:
    def test_march_the_first_hour_opens_an_hour_earlier_in_utc_after_the_change(self) -> None:
        # 2026-03-08 07:00 EST becomes EDT at 02:00: 12:00 UTC is 07:00 on the 7th, 08:00 on
        # the 8th.
        before = decide(NEW_YORK, at(2026, 3, 7, 12, 0))
        assert (before.kind, before.at) == (rules.WAIT, at(2026, 3, 7, 13, 0))
        assert decide(NEW_YORK, at(2026, 3, 8, 12, 0)).kind == rules.NOW
        assert decide(NEW_YORK, at(2026, 3, 8, 11, 59)).kind == rules.WAIT

    def test_march_a_call_held_overnight_waits_for_the_opening_after_the_change(self) -> None:
        # 22:00 EST on the 7th: the next opening is 08:00 EDT on the 8th, 12:00 UTC.
        held = decide(NEW_YORK, at(2026, 3, 8, 3, 0))
        assert (held.kind, held.at) == (rules.WAIT, at(2026, 3, 8, 12, 0))
        assert held.rule == "us-tcpa"

    def test_november_the_hours_close_and_reopen_across_the_change(self) -> None:
        # 2026-11-01 02:00 EDT falls back to 01:00 EST: 20:59 EDT on Oct 31 is open, 21:00 is
        # not, and the next opening, 08:00 EST, is 13:00 UTC.
        assert decide(NEW_YORK, at(2026, 11, 1, 0, 59)).kind == rules.NOW
        closed = decide(NEW_YORK, at(2026, 11, 1, 1, 0))
        assert (closed.kind, closed.at) == (rules.WAIT, at(2026, 11, 1, 13, 0))
        assert decide(NEW_YORK, at(2026, 11, 1, 12, 30)).kind == rules.WAIT

    def test_los_angeles_across_both_changes(self) -> None:
        assert decide(LOS_ANGELES, at(2026, 3, 7, 15, 0)).at == at(2026, 3, 7, 16, 0)  # PST
        assert decide(LOS_ANGELES, at(2026, 3, 9, 15, 0)).kind == rules.NOW  # PDT
        assert decide(LOS_ANGELES, at(2026, 11, 2, 15, 30)).at == at(2026, 11, 2, 16, 0)


class TestZones:
    def test_a_number_in_two_zones_is_called_only_when_both_are_within_hours(self) -> None:
        office = hours.parse("09:00", "17:00", list(hours.DAYS))
        # Summer: Boise (MDT) 09:30, Los Angeles (PDT) 08:30.
        early = decide(BOISE, at(2026, 6, 15, 15, 30), office)
        assert (early.kind, early.at) == (rules.WAIT, at(2026, 6, 15, 16, 0))
        assert "America/Los_Angeles" in (early.reason or "")
        assert decide(BOISE, at(2026, 6, 15, 16, 0), office).kind == rules.NOW
        # 17:00 in Boise closes it, though Los Angeles is at 16:00.
        late = decide(BOISE, at(2026, 6, 15, 23, 0), office)
        assert late.at == at(2026, 6, 16, 16, 0)

    def test_a_toll_free_number_must_be_within_hours_across_the_contiguous_states(self) -> None:
        place = rules.place_of(TOLL_FREE, None, None, rules_on=True)
        assert place.zones == rules.CONTIGUOUS_US
        # 12:30 UTC: 08:30 in New York, 05:30 in Los Angeles.
        held = decide(TOLL_FREE, at(2026, 6, 15, 12, 30))
        assert held.at == at(2026, 6, 15, 15, 0)
        # 01:00 UTC: 21:00 in New York, though 18:00 in Los Angeles.
        assert decide(TOLL_FREE, at(2026, 6, 16, 1, 0)).at == at(2026, 6, 16, 15, 0)

    def test_a_toll_free_number_takes_the_campaigns_default_time_zone(self) -> None:
        place = rules.place_of(TOLL_FREE, None, "America/Chicago", rules_on=True)
        assert place.zones == ("America/Chicago",)
        # 13:00 UTC: 08:00 in Chicago, though 06:00 in Los Angeles.
        chicago = decide(TOLL_FREE, at(2026, 6, 15, 13, 0), default_timezone="America/Chicago")
        assert chicago.kind == rules.NOW

    def test_a_time_zone_given_with_the_call_is_the_recipients(self) -> None:
        # A New York number whose owner lives in Los Angeles: 08:30 in New York is 05:30 there.
        held = decide(NEW_YORK, at(2026, 6, 15, 12, 30), timezone="America/Los_Angeles")
        assert held.at == at(2026, 6, 15, 15, 0)

    def test_a_time_zone_given_with_the_call_never_widens_the_numbers_own(self) -> None:
        # A Los Angeles number given as in New York: 08:30 in New York is 05:30 where the
        # number's area code places its owner, and the law presumes that place too.
        held = decide(LOS_ANGELES, at(2026, 6, 15, 12, 30), timezone="America/New_York")
        assert (held.kind, held.at) == (rules.WAIT, at(2026, 6, 15, 15, 0))
        assert "America/Los_Angeles" in (held.reason or "")
        # 21:30 in Los Angeles is 00:30 in New York the next day: neither may be called then.
        late = decide(LOS_ANGELES, at(2026, 6, 16, 4, 30), timezone="Pacific/Honolulu")
        assert late.kind == rules.WAIT
        place = rules.place_of(LOS_ANGELES, "Asia/Tokyo", None, rules_on=True)
        assert set(place.zones) == {"America/Los_Angeles", "Asia/Tokyo"}

    def test_a_time_zone_given_for_a_number_tied_to_no_place_is_its_zone(self) -> None:
        place = rules.place_of(TOLL_FREE, "America/Chicago", None, rules_on=True)
        assert place.zones == ("America/Chicago",)

    def test_days_are_the_local_days(self) -> None:
        weekdays = hours.parse("09:00", "17:00", ["mon", "tue", "wed", "thu", "fri"])
        # Friday 2026-06-19 21:30 UTC is 17:30 in New York, 14:30 in Los Angeles.
        assert decide(LOS_ANGELES, at(2026, 6, 19, 21, 30), weekdays).kind == rules.NOW
        friday_evening = decide(NEW_YORK, at(2026, 6, 19, 21, 30), weekdays)
        assert friday_evening.at == at(2026, 6, 22, 13, 0)  # Monday 09:00 EDT
        assert friday_evening.rule == "callingHours"


class TestStateRules:
    @pytest.mark.parametrize(
        ("number", "rule", "evening"),
        [
            (MIAMI, "us-fl", at(2026, 6, 16, 0, 30)),  # 20:30 EDT
            (OKLAHOMA_CITY, "us-ok", at(2026, 6, 16, 1, 30)),  # 20:30 CDT
            (TULSA, "us-ok", at(2026, 6, 16, 1, 30)),
            ("+14105550100", "us-md", at(2026, 6, 16, 0, 30)),  # Baltimore, 20:30 EDT
            ("+12065550100", "us-wa", at(2026, 6, 16, 3, 30)),  # Seattle, 20:30 PDT
        ],
    )
    def test_florida_oklahoma_maryland_and_washington_end_at_eight_in_the_evening(
        self, number: str, rule: str, evening: datetime
    ) -> None:
        held = decide(number, evening)
        assert held.kind == rules.WAIT
        assert held.rule == rule
        assert held.at is not None and held.at - evening == timedelta(hours=11, minutes=30)
        assert decide(number, evening - timedelta(minutes=31)).kind == rules.NOW
        # Without the law's rules (CALLING_RULES=false), the campaign's 21:00 is the end.
        assert decide(number, evening, rules_on=False).kind == rules.NOW

    def test_a_neighbour_state_keeps_the_federal_hours(self) -> None:
        assert decide(NEW_YORK, at(2026, 6, 16, 0, 30)).kind == rules.NOW
        assert decide(CHICAGO, at(2026, 6, 16, 1, 30)).kind == rules.NOW

    def test_the_federal_rule_narrows_a_campaigns_wider_hours(self) -> None:
        wide = hours.parse("06:00", "23:00", list(hours.DAYS))
        held = decide(NEW_YORK, at(2026, 6, 15, 11, 0), wide)  # 07:00 EDT
        assert (held.rule, held.at) == ("us-tcpa", at(2026, 6, 15, 12, 0))

    @pytest.mark.parametrize("number", ["+17875550100", "+13405550100", "+16715550100"])
    def test_a_number_of_a_us_territory_keeps_the_federal_hours(self, number: str) -> None:
        # Puerto Rico, the Virgin Islands, Guam: the TCPA's United States includes them.
        wide = hours.parse("06:00", "23:00", list(hours.DAYS))
        place = rules.place_of(number, None, None, rules_on=True)
        assert [rule["key"] for rule in place.rules] == ["us-tcpa"]
        local = datetime(2026, 6, 15, 7, 0, tzinfo=ZoneInfo(place.zones[0]))
        held = rules.decide(place, wide, local.astimezone(UTC))
        assert (held.kind, held.rule) == (rules.WAIT, "us-tcpa")

    def test_an_overlay_area_code_is_in_every_zone_of_the_codes_it_overlays(self) -> None:
        # 689 overlays Orlando's 407: phonenumbers places it in Chicago only, so 20:30 in
        # Orlando (19:30 in Chicago) looked open, past Florida's 20:00.
        orlando = "+16892001234"
        assert "America/New_York" in rules.place_of(orlando, None, None, rules_on=True).zones
        held = decide(orlando, at(2026, 6, 16, 0, 30))  # 20:30 EDT
        assert (held.kind, held.rule) == (rules.WAIT, "us-fl")
        # 364 overlays western Kentucky's 270: 08:30 in New York is 07:30 in Paducah.
        paducah = "+13642001234"
        early = decide(paducah, at(2026, 6, 15, 12, 30))
        assert (early.kind, early.at) == (rules.WAIT, at(2026, 6, 15, 13, 0))
        assert "America/Chicago" in (early.reason or "")

    def test_each_overlay_adds_zones_phonenumbers_lacks(self) -> None:
        from phonenumbers.tzdata import TIMEZONE_DATA

        for overlay, overlaid in OVERLAYS.items():
            own = {z for k, v in TIMEZONE_DATA.items() if k.startswith("1" + overlay) for z in v}
            theirs = rules._area_zones(overlaid)
            assert set(theirs) - own, f"{overlay}: phonenumbers already has {sorted(own)}"

    def test_canada_keeps_its_weekday_and_its_weekend_hours(self) -> None:
        toronto = "+14165550100"
        wide = hours.parse("06:00", "23:00", list(hours.DAYS))
        # Monday 2026-06-15 08:30 EDT: the CRTC's weekday hours open at 09:00.
        monday = decide(toronto, at(2026, 6, 15, 12, 30), wide)
        assert (monday.kind, monday.at, monday.rule) == (
            rules.WAIT,
            at(2026, 6, 15, 13, 0),
            "ca-crtc",
        )
        assert decide(toronto, at(2026, 6, 16, 1, 15), wide).kind == rules.NOW  # 21:15
        late = decide(toronto, at(2026, 6, 16, 1, 30), wide)  # 21:30 Monday
        assert late.at == at(2026, 6, 16, 13, 0)
        # Saturday 2026-06-20: 09:30 waits for 10:00; 18:00 closes until Sunday 10:00.
        saturday = decide(toronto, at(2026, 6, 20, 13, 30), wide)
        assert saturday.at == at(2026, 6, 20, 14, 0)
        assert "10:00-18:00 on sat,sun" in (saturday.reason or "")
        evening = decide(toronto, at(2026, 6, 20, 22, 0), wide)
        assert evening.at == at(2026, 6, 21, 14, 0)
        # Friday 20:00 is open on a weekday, though a weekend's hours would have closed.
        assert decide(toronto, at(2026, 6, 20, 0, 0), wide).kind == rules.NOW
        # Without the law's rules, the campaign's own hours alone.
        assert decide(toronto, at(2026, 6, 15, 12, 30), wide, rules_on=False).kind == rules.NOW

    def test_a_number_outside_the_us_has_only_its_campaigns_hours(self) -> None:
        place = rules.place_of("+447911123456", None, None, rules_on=True)
        assert place.rules == ()
        assert "Europe/London" in place.zones


class TestStartAndEnd:
    def test_a_call_waits_for_its_start_within_its_hours(self) -> None:
        start = at(2026, 6, 15, 14, 0)
        held = decide(NEW_YORK, at(2026, 6, 15, 13, 0), start_at=start)
        assert (held.kind, held.at, held.rule) == (rules.WAIT, start, "startAt")
        # A start before the hours open waits for them.
        night = decide(NEW_YORK, at(2026, 6, 15, 1, 0), start_at=at(2026, 6, 15, 5, 0))
        assert night.at == at(2026, 6, 15, 12, 0)

    def test_a_call_past_its_not_after_expires(self) -> None:
        ended = decide(NEW_YORK, at(2026, 6, 15, 14, 0), not_after=at(2026, 6, 15, 14, 0))
        assert (ended.kind, ended.rule) == (rules.EXPIRED, "notAfter")

    def test_hours_opening_only_after_not_after_wait_for_not_after(self) -> None:
        held = decide(NEW_YORK, at(2026, 6, 15, 2, 0), not_after=at(2026, 6, 15, 6, 0))
        assert (held.kind, held.at) == (rules.WAIT, at(2026, 6, 15, 6, 0))
        assert decide(NEW_YORK, at(2026, 6, 15, 6, 0), not_after=at(2026, 6, 15, 6, 0)).kind == (
            rules.EXPIRED
        )


class TestHoursInput:
    @pytest.mark.parametrize(
        ("start", "end", "days", "field"),
        [
            ("9:00", "20:00", ["mon"], "start"),
            ("09:00", "25:00", ["mon"], "end"),
            ("20:00", "09:00", ["mon"], "end"),
            ("09:00", "20:00", [], "days"),
            ("09:00", "20:00", ["monday"], "days"),
        ],
    )
    def test_bad_hours_name_their_field(
        self, start: str, end: str, days: list[str], field: str
    ) -> None:
        with pytest.raises(hours.InvalidHours) as caught:
            hours.parse(start, end, days)
        assert caught.value.field == field


class TestCaps:
    def test_a_cap_opens_when_the_oldest_call_leaves_the_24_hours(self) -> None:
        now = at(2026, 6, 15, 18, 0)
        calls = [now - timedelta(hours=h) for h in (20, 5, 1)]
        assert rules.cap_opens(calls, 3, now) == now + timedelta(hours=4)
        assert rules.cap_opens(calls, 4, now) is None
        assert rules.cap_opens(calls[1:], 3, now) is None
        # Older than 24 hours: not counted.
        assert rules.cap_opens([now - timedelta(hours=25), *calls[1:]], 3, now) is None

    def test_a_cap_that_opens_at_night_waits_for_the_morning(self) -> None:
        now = at(2026, 6, 15, 20, 0)  # 16:00 in New York
        capped = rules.Wait(at(2026, 6, 16, 3, 0), "3 calls", "MAX_CALLS_PER_NUMBER_PER_DAY")
        held = decide(NEW_YORK, now, waits=[capped])
        assert (held.at, held.rule) == (at(2026, 6, 16, 12, 0), "MAX_CALLS_PER_NUMBER_PER_DAY")
        assert "then 23:00 mon in America/New_York" in (held.reason or "")

    def test_a_cap_past_not_after_waits_for_not_after(self) -> None:
        now = at(2026, 6, 15, 14, 0)
        capped = rules.Wait(at(2026, 6, 16, 14, 0), "3 calls", "MAX_CALLS_PER_NUMBER_PER_DAY")
        held = decide(NEW_YORK, now, not_after=at(2026, 6, 15, 22, 0), waits=[capped])
        assert (held.kind, held.at) == (rules.WAIT, at(2026, 6, 15, 22, 0))


class TestNumberFacts:
    def test_north_american_numbers_read_from_the_tables_are_what_the_library_says(self) -> None:
        """The batch's fast path (phonenumbers' prefix tables, an exchange at a time) against
        the library's own per-number calls, over numbers of every area code."""
        import random

        import phonenumbers

        chosen = random.Random(12)
        numbers = [TOLL_FREE, "+15005550006", "+19005550100", BOISE, "+16475550100"]
        while len(numbers) < 3000:
            number = f"+1{chosen.randint(200, 999)}{chosen.randint(200, 999)}"
            number += f"{chosen.randint(0, 9999):04d}"
            if phonenumbers.is_valid_number(phonenumbers.parse(number)):
                numbers.append(number)
        for number in numbers:
            zones, geographic, region, description = rules._facts(number)
            fast = rules._nanp_facts(number)
            assert fast[1:3] == (geographic, region), number
            if geographic:
                # An overlay's number has its overlaid codes' zones too (overlays.py).
                assert fast[0][: len(zones)] == zones, number
                assert fast[0] == zones or number[2:5] in OVERLAYS, number
                assert fast[3] == description, number
