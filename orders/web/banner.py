"""The banner of the order a ticket placed: drawn by the ticket's answer, then pushed by the desk socket as the
order moves on (OPEN → PARTIALLY_FILLED → FILLED, or REJECTED with the venue's reason)."""

from __future__ import annotations

from typing import Any

from orders import wire


def placed_out(order) -> dict[str, Any]:
    """The order as the banner shows it: its wire form, plus the venue's words when it ended unfilled."""
    return {**wire.order_out(order), "message": order.status_message}
