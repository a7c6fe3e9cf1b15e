"""Which events an endpoint subscribes to: event types ("call.completed") and wildcards, "*"
for every event or "call.*" for every event of one kind of subject.

An event of type T matches an endpoint when its list holds T, T's kind followed by ".*", or
"*": a list overlap, which the database tests in the same statement that fans an event out.
"""

import re

from sqlalchemy import ColumnElement, Text, cast, func, literal
from sqlalchemy.dialects.postgresql import ARRAY, array

EVERYTHING = "*"
MAX_PATTERNS = 100
_PATTERN = re.compile(r"^(?:\*|[a-z][a-z_]*\.(?:\*|[a-z][a-z_]*))$")


class InvalidPattern(ValueError):
    pass


def check(patterns: list[str]) -> list[str]:
    """The patterns without repeats, in their order; InvalidPattern naming the first that is
    no event type or wildcard."""
    if not patterns:
        raise InvalidPattern('name at least one event type, or "*" for every event')
    if len(patterns) > MAX_PATTERNS:
        raise InvalidPattern(f"at most {MAX_PATTERNS} event types")
    for pattern in patterns:
        if not _PATTERN.match(pattern):
            raise InvalidPattern(
                f"{pattern!r} is no event type (such as call.completed) or wildcard (call.* or *)"
            )
    return list(dict.fromkeys(patterns))


def matching(event_type: str) -> list[str]:
    """Every pattern that matches an event of this type."""
    kind = event_type.partition(".")[0]
    return [event_type, f"{kind}.*", EVERYTHING]


def matches(patterns: list[str], event_type: str) -> bool:
    return not set(patterns).isdisjoint(matching(event_type))


def matches_sql(
    patterns: ColumnElement[list[str]], event_type: ColumnElement[str]
) -> ColumnElement[bool]:
    """`matches` as a SQL condition on an endpoint's patterns and an event's type column."""
    kind_wildcard = func.split_part(event_type, ".", 1).op("||")(literal(".*"))
    wanted = array([cast(event_type, Text), kind_wildcard, literal(EVERYTHING, Text)])
    return patterns.op("&&")(cast(wanted, ARRAY(Text)))
