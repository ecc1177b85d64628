"""Pure rules for exit legs."""

from __future__ import annotations

ROLE_SUFFIX = {"stop_loss": "sl", "take_profit": "tp"}


def leg_client_order_id(*, seed: str, role: str, index: int = 0) -> str:
    """Deterministic client id of a leg: ``{seed}-sl`` / ``{seed}-tp``, then ``-sl-2`` … for later parts.
    The same entry always yields the same ids, so a leg is never placed twice."""
    suffix = ROLE_SUFFIX[role]
    base = f"{seed}-{suffix}" if index == 0 else f"{seed}-{suffix}-{index + 1}"
    return base[-64:]
