"""API keys as values: how a new key is made and how it is stored (a SHA-256 digest, never the key).

Pure Python, so both the services that issue keys and the /v1 edge that checks them can use it without the
services importing the edge."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "tdk_"


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new key and its lookup prefix: ``tdk_<prefix>_<secret>``."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix
