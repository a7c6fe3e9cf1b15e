"""Overlay area codes whose time zones phonenumbers gives too few of, as data.

An overlay serves the whole territory of the codes it overlays, and one of its numbers may be
anywhere in it; phonenumbers knows these overlays by their area code alone, with fewer zones
than the codes overlaid have (689, Orlando's overlay of 407, it places in Chicago; 364, of
western Kentucky's 270, only in New York), so an evening call could ring after 8 p.m. in
Orlando, and a morning one before 8 a.m. in Paducah. A number of an overlay is in every zone
of its own and of the codes overlaid: a mistake here only narrows its hours.

Source: the overlays as NANPA (US) and the CNA (Canada) assigned them; each entry was found
missing zones of the codes overlaid in phonenumbers 9.0.43 (tests/calling_hours/test_rules.py
checks that no entry adds nothing).
"""

OVERLAYS: dict[str, tuple[str, ...]] = {
    "689": ("407",),  # Florida, Orlando
    "448": ("850",),  # Florida, the Panhandle: Eastern and Central
    "364": ("270",),  # Kentucky, western: Central and Eastern
    "930": ("812",),  # Indiana, southern: Eastern and Central
    "458": ("541",),  # Oregon: Pacific and, in Malheur County, Mountain
    "986": ("208",),  # Idaho: Mountain and Pacific
    "879": ("709",),  # Newfoundland and Labrador: Newfoundland and Atlantic
    "257": ("250", "236", "672", "604", "778"),  # British Columbia: Pacific and Mountain
    "474": ("306", "639"),  # Saskatchewan: Central without daylight saving
}
