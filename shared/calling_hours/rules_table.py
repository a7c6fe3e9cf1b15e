"""The law's calling rules, as data: each applies to the numbers of a country, or of one of its
states (presumed from the number's area code, as the statutes themselves presume), and gives
the local hours within which a solicitation call may be placed and, where the law caps them,
how many calls one number may get in any 24 hours on the same subject (a campaign here).

Add a row only with its source. A number's hours are the intersection of every rule that
applies to it and its campaign's hours, in each of the number's time zones.
"""

from typing import NotRequired, TypedDict

# Puerto Rico, the US Virgin Islands, Guam, the Northern Mariana Islands, American Samoa.
US_AND_TERRITORIES = ("US", "PR", "VI", "GU", "MP", "AS")
ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Rule(TypedDict):
    key: str
    countries: tuple[str, ...]  # ISO 3166 regions as phonenumbers names them
    state: str | None  # the state's two-letter code; None: the whole country
    state_name: str | None  # as phonenumbers' English geocoder names the state
    start: str  # local time, HH:MM, inclusive
    end: str  # local time, HH:MM, exclusive
    days: tuple[str, ...]
    # More windows on other days (days, start, end): a moment within any window is within the
    # rule, as Canada's weekends keep other hours than its weekdays.
    also: NotRequired[tuple[tuple[tuple[str, ...], str, str], ...]]
    max_calls_per_24h: int | None
    source: str


RULES: tuple[Rule, ...] = (
    {
        "key": "us-tcpa",
        # The territories too: phonenumbers gives their numbers a region of their own.
        "countries": US_AND_TERRITORIES,
        "state": None,
        "state_name": None,
        "start": "08:00",
        "end": "21:00",
        "days": ALL_DAYS,
        "max_calls_per_24h": None,
        "source": "47 CFR 64.1200(c)(1) (TCPA): no telephone solicitation before 8 a.m. or "
        "after 9 p.m. local time at the called party's location; the United States being the "
        "States, the Territories, the District of Columbia and the possessions (47 U.S.C. "
        "153(57))",
    },
    {
        "key": "us-fl",
        "countries": ("US",),
        "state": "FL",
        "state_name": "Florida",
        "start": "08:00",
        "end": "20:00",
        "days": ALL_DAYS,
        "max_calls_per_24h": 3,
        "source": "Fla. Stat. 501.616(6)(a) (Florida Telephone Solicitation Act, as amended "
        "2021): not before 8 a.m. or after 8 p.m. local time at the called person's location, "
        "and not more than 3 calls from any number in a 24-hour period on the same subject; a "
        "Florida area code is presumed to be a Florida resident",
    },
    {
        "key": "us-ok",
        "countries": ("US",),
        "state": "OK",
        "state_name": "Oklahoma",
        "start": "08:00",
        "end": "20:00",
        "days": ALL_DAYS,
        "max_calls_per_24h": 3,
        "source": "15 O.S. 775C.4 (Oklahoma Telephone Solicitation Act of 2022, HB 3168): not "
        "before 8 a.m. or after 8 p.m. local time at the called party's location, and not more "
        "than 3 calls in a 24-hour period on the same subject; an Oklahoma area code is presumed "
        "to be an Oklahoma resident",
    },
    {
        "key": "us-md",
        "countries": ("US",),
        "state": "MD",
        "state_name": "Maryland",
        "start": "08:00",
        "end": "20:00",
        "days": ALL_DAYS,
        "max_calls_per_24h": 3,
        "source": "Md. Code, Com. Law 14-4502 (Stop the Spam Calls Act of 2023, in force "
        "2024-01-01): not before 8 a.m. or after 8 p.m. in the called party's time zone, and "
        "not more than 3 calls or texts in a 24-hour period on the same subject",
    },
    {
        "key": "us-wa",
        "countries": ("US",),
        "state": "WA",
        "state_name": "Washington State",
        "start": "08:00",
        "end": "20:00",
        "days": ALL_DAYS,
        "max_calls_per_24h": None,
        "source": "RCW 19.158.040(2): a commercial telephone solicitor shall not place calls "
        "received before 8:00 a.m. or after 8:00 p.m. at the call recipient's local time",
    },
    {
        "key": "ca-crtc",
        "countries": ("CA",),
        "state": None,
        "state_name": None,
        "start": "09:00",
        "end": "21:30",
        "days": ("mon", "tue", "wed", "thu", "fri"),
        "also": ((("sat", "sun"), "10:00", "18:00"),),
        "max_calls_per_24h": None,
        "source": "CRTC Unsolicited Telecommunications Rules, Part III (Telemarketing Rules): "
        "telemarketing calls only between 9:00 a.m. and 9:30 p.m. on weekdays and between "
        "10:00 a.m. and 6:00 p.m. on weekends, in the called consumer's local time",
    },
)
