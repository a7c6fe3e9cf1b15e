"""Which events an endpoint subscribes to: event types ("call.completed") and wildcards
("call.*", or "*" for every event), matched as GET /api/events filters them
(shared.events.types)."""

from shared.events import types

MAX_PATTERNS = 100


class InvalidPattern(ValueError):
    pass


def check(patterns: list[str]) -> list[str]:
    """The patterns without repeats, in their order; InvalidPattern naming those that select
    no event type (a misspelt one would select nothing, and the endpoint would hear nothing)."""
    if not patterns:
        raise InvalidPattern('name at least one event type, or "*" for every event')
    if len(patterns) > MAX_PATTERNS:
        raise InvalidPattern(f"at most {MAX_PATTERNS} event types")
    unknown = [pattern for pattern in patterns if not types.known_pattern(pattern)]
    if unknown:
        raise InvalidPattern(
            f"no event type matches {', '.join(map(repr, unknown))}; the types: "
            + ", ".join(types.ALL)
        )
    return list(dict.fromkeys(patterns))
