"""Alert deliveries as values: how a webhook body is signed and checked, and when a failed delivery is tried again.

A webhook carries three headers (``SIGNATURE_HEADER``, ``TIMESTAMP_HEADER``, ``IDEMPOTENCY_HEADER``). The signature
is HMAC-SHA256 with the channel's secret over ``timestamp + "." + body``, written ``sha256=<hex>``: a receiver
recomputes it over the raw body it got, compares in constant time and refuses a timestamp older than a few minutes
(a replayed request). The idempotency key is the same on every retry of one delivery, so a receiver that saw it
already answers 2xx and does nothing: delivery is at least once, handling exactly once."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable
from datetime import timedelta

SIGNATURE_HEADER = "X-Desk-Signature"
TIMESTAMP_HEADER = "X-Desk-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Desk-Event"
SIGNATURE_TOLERANCE_SECONDS = 300


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def is_valid_signature(*, secret: str, timestamp: str, body: bytes, signature: str, now: float,
                       tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent (``now`` in Unix seconds)."""
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    expected = webhook_signature(secret=secret, timestamp=timestamp, body=body)
    return age <= tolerance and hmac.compare_digest(expected, signature)


def retry_delay(attempts: int, *, base: float, cap: float,
                jitter: Callable[[], float] = random.random) -> timedelta:
    """How long after its ``attempts``-th failure a delivery is tried again: ``base × 2^(attempts-1)``, at most
    ``cap``, spread by ±25 % so that receivers coming back are not hit by every desk at once. Until the cap each
    delay is at least 1.2 × the one before, whatever the jitter (2 × 0.75 / 1.25)."""
    delay = min(base * 2 ** max(attempts - 1, 0), cap)
    return timedelta(seconds=delay * (0.75 + 0.5 * jitter()))


def secret_hint(secret: str) -> str:
    """What is shown of a secret after it was created: its last four characters."""
    return f"…{secret[-4:]}" if len(secret) >= 12 else "…"
