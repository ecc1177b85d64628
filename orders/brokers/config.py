"""Broker configuration from environment variables: every missing variable is reported at once."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured


def require_env(broker: str, required: list[str], optional: dict[str, str]) -> dict[str, str]:
    """The broker's settings; raises ImproperlyConfigured listing each required variable as set / NOT SET."""
    values = {name: os.environ.get(name, "") for name in required}
    missing = [name for name, value in values.items() if not value]
    if missing:
        lines = "\n".join(f"  {name}: {'set' if values[name] else 'NOT SET'}" for name in required)
        raise ImproperlyConfigured(f"GATEWAY_PROVIDER={broker} needs these variables:\n{lines}")
    for name, default in optional.items():
        values[name] = os.environ.get(name, default)
    return values
