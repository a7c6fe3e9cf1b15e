"""Stripe's form encoding: nested keys such as line_items[0][price_data][currency]=usd."""

import re
from typing import Any

_PART = re.compile(r"\[([^\]]*)\]")


def _convert_lists(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _convert_lists(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def parse(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        path = [head, *_PART.findall(key)]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return dict(_convert_lists(root))
