"""Ids as people and scripts send them: the desk's own ids are UUIDs, and anything else (a venue's id, a typo, a
path segment) is told apart before it reaches a query that would refuse it."""

from __future__ import annotations

import uuid


def is_uuid(value: object) -> bool:
    """Whether ``value`` reads as a UUID (any of the forms ``uuid.UUID`` takes)."""
    try:
        uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return False
    return True
