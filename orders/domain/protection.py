"""Time to protection, as numbers and words: percentiles of waits and how a wait is said on the risk view."""

from __future__ import annotations

import math
from decimal import Decimal


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile of sorted ``values`` (p99 of 10 waits is the slowest)."""
    if not values:
        raise ValueError("no values")
    rank = max(1, math.ceil(pct / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


def seconds_text(seconds: float | Decimal) -> str:
    """0.31 s, 2 s, 12 s: hundredths under ten seconds, whole seconds above."""
    value = float(seconds)
    if value >= 10:
        return f"{value:.0f} s"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text} s"
