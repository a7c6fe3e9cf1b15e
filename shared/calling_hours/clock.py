"""The clock the calling-hours rules read, in one place so that tests can set it: the rules
themselves take `now` as an argument and never read a clock."""

from datetime import datetime

from shared.models import utcnow


def now() -> datetime:
    return utcnow()
