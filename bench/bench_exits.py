"""Exit engine benchmark: quotes processed per second by the engine's book of synthetic
(engine-held) trailing stops with 10,000 resting legs across 100 symbols, divided by the same
with 10 legs. Both are measured side by side in one run, on the same quote stream.

Target: ratio >= 0.5 — the cost of a quote grows with the legs of that symbol that move or
trigger, not with all resting legs.

    .venv/bin/python bench/bench_exits.py [--quotes 200000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from orders.domain.enums import Side, TrailingType  # noqa: E402
from orders.exits.book import TrailingBook, TrailingLeg  # noqa: E402

SYMBOLS = [f"SYM{i:03d}" for i in range(100)]
TARGET = 0.5


def quote_stream(count: int, seed: int) -> list[tuple[str, Decimal, Decimal]]:
    rng = random.Random(seed)
    prices = {s: 10000 for s in SYMBOLS}              # in cents
    stream = []
    for _ in range(count):
        symbol = rng.choice(SYMBOLS)
        prices[symbol] = max(100, prices[symbol] + rng.randint(-3, 3))
        mid = Decimal(prices[symbol]) / 100
        stream.append((symbol, mid - Decimal("0.01"), mid + Decimal("0.01")))
    return stream


def build_book(legs: int, seed: int) -> TrailingBook:
    rng = random.Random(seed)
    book = TrailingBook()
    for i in range(legs):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        side = Side.SELL if rng.random() < 0.5 else Side.BUY
        kind = TrailingType.ABSOLUTE if rng.random() < 0.5 else TrailingType.PERCENT
        # wide distances: legs rest (as resting stops do) instead of all firing in the first seconds
        distance = Decimal(rng.randint(3000, 6000)) / 100 if kind is TrailingType.ABSOLUTE else Decimal(
            rng.randint(30, 60))
        book.add(TrailingLeg(f"leg-{i}", symbol, side, distance, kind, Decimal("100")))
    return book


def run(book: TrailingBook, stream) -> tuple[float, int]:
    fired = 0
    started = time.perf_counter()
    for symbol, bid, ask in stream:
        triggered, _ = book.on_quote(symbol, bid=bid, ask=ask)
        fired += len(triggered)
    return len(stream) / (time.perf_counter() - started), fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stream = quote_stream(args.quotes, seed=1)
    small_rates, large_rates = [], []
    for round_no in range(args.rounds):      # alternate so drift in machine load hits both alike
        small, small_fired = build_book(10, seed=round_no), None
        rate, small_fired = run(small, stream)
        small_rates.append(rate)
        large = build_book(10_000, seed=round_no)
        rate, large_fired = run(large, stream)
        large_rates.append(rate)
        print(f"round {round_no + 1}: 10 legs {small_rates[-1]:,.0f} quotes/s ({small_fired} fired), "
              f"10,000 legs {large_rates[-1]:,.0f} quotes/s ({large_fired} fired, {len(large)} still resting)")
    small_rate = sorted(small_rates)[len(small_rates) // 2]
    large_rate = sorted(large_rates)[len(large_rates) // 2]
    ratio = large_rate / small_rate
    print(f"quotes/s with 10 legs      {small_rate:12,.0f}")
    print(f"quotes/s with 10,000 legs  {large_rate:12,.0f}")
    print(f"ratio 10,000 / 10 = {ratio:.3f}  ({'meets' if ratio >= TARGET else 'BELOW'} target {TARGET})")


if __name__ == "__main__":
    main()
