"""How the audit page shows a record's details: one ``key = value`` line per key, keys sorted; a text value as it
is, any other (a number, a list, a nested record, true, null) as compact JSON. The CSV export keeps the JSON."""

from __future__ import annotations

import json

from django import template

register = template.Library()


def _shown(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False, default=str)


@register.filter
def key_values(details) -> list[tuple[str, str]]:
    """``{"b": {"to": 5, "from": null}, "a": "x"}`` → ``[("a", "x"), ("b", '{"from": null, "to": 5}')]``;
    details that are not a record are one line with an empty key."""
    if details in (None, "", {}):
        return []
    if not isinstance(details, dict):
        return [("", _shown(details))]
    return [(str(key), _shown(details[key])) for key in sorted(details, key=str)]
