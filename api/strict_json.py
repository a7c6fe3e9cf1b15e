"""A request's JSON body read more strictly than Python's json module reads it.

Python takes NaN and Infinity, which are not JSON, and 1e999, which no double holds, as floats:
a name of 1e999 became the text "inf" (the model turns numbers into text), spoken to the
callee. And an object that gives a key twice keeps its last value, while another reader of the
same body (a proxy, a log, a client's own check) may keep its first. Both are refused, naming
what was found.
"""

import json
import math
from collections.abc import Iterable
from typing import Any

# A key is shown at most this long in the refusal: the body may hold one of any length.
_SHOWN = 100


class Refused(ValueError):
    """JSON this API does not read, with why."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise Refused(f"the JSON body gives the key {_repeated(pairs)!r} twice in one object")
    return result


def _repeated(pairs: Iterable[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            # repr() escapes what could not be shown (a control character, a lone surrogate).
            return key if len(key) <= _SHOWN else key[:_SHOWN] + "..."
        seen.add(key)
    raise AssertionError("no key repeated")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise Refused(f"the JSON body holds the number {text[:_SHOWN]}, beyond what a double holds")
    return value


def _not_json(name: str) -> float:
    raise Refused(f"the JSON body holds {name}, which is not a JSON number")


def loads(body: bytes) -> Any:
    """The body's value; Refused for what is named above, and json's own errors (a
    JSONDecodeError, a RecursionError, a ValueError) for what it cannot read at all."""
    return json.loads(
        body, object_pairs_hook=_object, parse_float=_finite, parse_constant=_not_json
    )
