"""Pages of a list that is ordered newest first by a timestamp, then by id.

Every list the API and the desk serve is bounded: ``DEFAULT_PAGE`` rows unless ``limit`` asks for
fewer or more, never more than ``MAX_PAGE``. The next page starts after a cursor, an opaque token
naming the last row served (its timestamp and id), so rows arriving meanwhile neither shift nor
repeat what a client already has."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from orders.domain.errors import InvalidValue

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def page_size(limit: int | None) -> int:
    """What ``limit`` serves: the default when absent, at most ``MAX_PAGE``."""
    return DEFAULT_PAGE if limit is None else min(limit, MAX_PAGE)


def encode_cursor(at: datetime, key: str) -> str:
    raw = f"{at.astimezone(UTC).isoformat()}|{key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, str]:
    """The (timestamp, id) a cursor names. Raises InvalidValue for anything not made by ``encode_cursor``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, key = raw.split("|", 1)
        at = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidValue("cursor", "not a cursor this server gave out", provided=token[:100]) from None
    if at.tzinfo is None or not key:
        raise InvalidValue("cursor", "not a cursor this server gave out", provided=token[:100])
    return at, key
