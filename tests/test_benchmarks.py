"""Each benchmark the README names still runs to its end on a small scale: a change elsewhere (a login that now
asks a second factor, a renamed setting) must not leave a benchmark that fails before it measures anything. The
figures are the benchmarks' own business (``bench/README.md``); here only that they come out."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def bench(name: str, *args: str, timeout: int = 600) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / name), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_blotter_benchmark_draws_the_desk_page_for_a_logged_in_admin():
    out = bench("bench_blotter.py", "--sizes", "40,400", "--requests", "2", "--rounds", "1", "--warmup", "1")

    assert re.search(r"400 orders: first paint median [\d.]+ ms .*drew 20 working, 50 finished, 50 fills", out), out
    assert re.search(r"ratio 400 / 40 orders = [\d.]+ / [\d.]+ ms", out), out
    assert re.search(r"first paint bytes \(the desk page, 400 orders\): HTML [\d,]+", out), out


def test_the_orders_benchmark_places_orders_beside_a_bare_get():
    out = bench("bench_orders.py", "--seconds", "1", "--warmup", "0.5", "--rounds", "1", "--connections", "2")

    assert re.search(r"ratio post_orders_rps / bare_get_rps = [\d.]+ ", out), out
    persisted, accepted = map(int, re.search(r"orders persisted: (\d+) \(>= (\d+) accepted", out).groups())
    assert accepted > 0 and persisted >= accepted, out
