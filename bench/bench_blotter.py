"""Blotter first-paint benchmark: the time to serve the desk page (GET / as the logged-in demo trader)
with 100,000 orders of history in the database, divided by the same with 100 orders. One run measures
both, each on its own SQLite file, in a fresh process per database.

Target: ratio <= 1.5 — the page draws the working orders, the last 50 finished orders and the last 50
fills, so its cost must not grow with the history behind them.

    .venv/bin/python bench/bench_blotter.py [--requests 60] [--rounds 3] [--working 20] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from desk_server import manage, settle_history_order  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100, 100_000)
TARGET = 1.5
SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "TSLA", "SPY")
HELD = ("AAPL", "MSFT", "NVDA")          # open positions, marked to market on every paint
BATCH = 5000


# -- in the child process (one database) ---------------------------------------------------------------

def _setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingdesk.settings")
    import django

    django.setup()


def build(orders: int, working: int, seed: int) -> dict:
    """``orders`` orders of the demo account: ``working`` still working, the rest finished over the last
    200 days (65 % filled, each with its fill), plus a few open positions."""
    _setup_django()
    from django.utils import timezone

    from orders.models import Account, Fill, Order, Position

    rng = random.Random(seed)
    account = Account.objects.get(name="demo")
    now = timezone.now()
    start = now - timedelta(days=200)
    step = (now - start - timedelta(hours=1)) / orders
    prices = {s: Decimal(rng.randint(5000, 40000)) / 100 for s in SYMBOLS}
    working_at = set(range(orders - working, orders))            # the newest ones are still working
    batch_orders: list[Order] = []
    batch_fills: list[Fill] = []
    counts = {"working": 0, "FILLED": 0, "CANCELLED": 0, "REJECTED": 0, "fills": 0}

    def flush() -> None:
        Order.objects.bulk_create(batch_orders)
        Fill.objects.bulk_create(batch_fills)
        batch_orders.clear()
        batch_fills.clear()

    for i in range(orders):
        created = start + step * i
        symbol = rng.choice(SYMBOLS)
        price = prices[symbol]
        side = rng.choice(("BUY", "SELL"))
        quantity = Decimal(rng.randint(1, 50))
        order = Order(account=account, symbol=symbol, side=side, quantity=quantity, time_in_force="GTC",
                      created_at=created, updated_at=created + timedelta(seconds=1), submitted_by="user:demo",
                      reserved_price=price)
        if i in working_at:
            order.order_type, order.status = "LIMIT", "OPEN"
            order.limit_price = price * (Decimal("0.9") if side == "BUY" else Decimal("1.1"))
            order.limit_price = order.limit_price.quantize(Decimal("0.01"))
            counts["working"] += 1
        else:
            fill = settle_history_order(order, index=i, price=price, fill_id=f"bench-{i}")
            if fill is not None:
                batch_fills.append(fill)
                counts["fills"] += 1
            counts[order.status] += 1
        batch_orders.append(order)
        if len(batch_orders) >= BATCH:
            flush()
    flush()
    for symbol in HELD:
        Position.objects.update_or_create(account=account, symbol=symbol, defaults={
            "quantity": Decimal("25"), "average_price": prices[symbol], "opened_at": start, "updated_at": now})
    return {"orders": Order.objects.count(), **counts}


def measure(requests: int, warmup: int) -> dict:
    """Times of GET / as the demo trader, logged in with its second factor, through Django's test client (the
    whole request path: middleware, session, the two-factor gate, the blotter's queries, the template), and the
    slowest queries of one."""
    _setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client = Client(HTTP_HOST="127.0.0.1")           # a host the desk serves (no "testserver" outside tests)
    demo = get_user_model().objects.get(username="demo")
    client.force_login(demo)
    # demo is an admin, so its session gives a code after the password: this one has, with its authenticator (the
    # two-factor gate's check of a verified session is part of every page)
    device, _ = TOTPDevice.objects.get_or_create(user=demo, name="authenticator", defaults={"confirmed": True})
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    for _ in range(warmup):
        response = client.get("/")
        assert response.status_code == 200, response.status_code
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get("/")
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    html = response.content.decode()
    queries: list[tuple[float, str]] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append(((time.perf_counter() - started) * 1000, sql))

    with connection.execute_wrapper(timed):
        client.get("/")
    return {"timings_ms": [t * 1000 for t in timings], "rows": html.count('<tr id="order-'),
            "finished": html.count('id="done-'), "fills": html.count('id="trade-'), "queries": len(queries),
            "slowest": [(round(ms, 2), sql[:160]) for ms, sql in sorted(queries, reverse=True)[:3]],
            "bytes": first_paint_bytes(client, html)}


def first_paint_bytes(client, html: str) -> dict:
    """The bytes a browser fetches for the desk's first paint, as the server sends them (WhiteNoise, in the
    middleware the test client runs too): the page, and each style sheet and script it names, asked for with and
    without ``Accept-Encoding: gzip``. The page itself is sent as it is (no compression of pages that carry a
    CSRF token); what gzip would make of it is shown beside."""
    import gzip
    import re

    def sent(url: str, encoding: str) -> int:
        response = client.get(url, headers={"Accept-Encoding": encoding})
        assert response.status_code == 200, (url, response.status_code)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert encoding == "gzip" or not response.has_header("Content-Encoding"), url
        return len(body)

    page = html.encode()
    assets = re.findall(r'<(?:link rel="stylesheet" href|script src)="([^"]+)"', html)
    files = {url: {"raw": sent(url, "identity"), "gzip": sent(url, "gzip")} for url in assets}
    return {"html": len(page), "html_gzip": len(gzip.compress(page)), "files": files,
            "assets_raw": sum(f["raw"] for f in files.values()), "assets_gzip": sum(f["gzip"] for f in files.values())}


# -- the parent: one database per size -----------------------------------------------------------------

def child(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_blotter {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def database(var_dir: Path, orders: int, working: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"DESK_VAR_DIR": str(var_dir), "DESK_SQLITE_PATH": str(var_dir / "desk.sqlite3"),
                "PAPER_MARKET_HOURS": "always",
                "DESK_LOG_LEVEL": "WARNING"})
    env.pop("DJANGO_SETTINGS_MODULE", None)
    manage(env, "migrate", "--no-input", "-v0")
    manage(env, "desk_setup")
    manage(env, "desk_static")                  # the page names the collected (hashed) static files
    started = time.perf_counter()
    built = child(env, "--child", "build", "--orders", str(orders), "--working", str(working))
    print(f"{orders:>7,} orders: built in {time.perf_counter() - started:.1f} s  ({built})")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="timed requests per database (median)")
    parser.add_argument("--rounds", type=int, default=3, help="measuring processes per database, alternated")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--working", type=int, default=20, help="working orders in each database")
    parser.add_argument("--keep", action="store_true", help="keep the temporary databases")
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES),
                        help="the order histories compared, smallest first (a quick check: --sizes 100,1000)")
    parser.add_argument("--child", choices=("build", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--orders", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "build":
        print(json.dumps(build(args.orders, min(args.working, args.orders // 2), seed=1)))
        return
    if args.child == "measure":
        print(json.dumps(measure(args.requests, args.warmup)))
        return

    sizes = [int(n) for n in args.sizes.split(",")]
    base = Path(tempfile.mkdtemp(prefix="bench-blotter-"))
    timings: dict[int, list[float]] = {n: [] for n in sizes}
    try:
        envs = {n: database(base / f"orders-{n}", n, args.working) for n in sizes}
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):     # alternate, so a change in machine load hits both alike
            for n in sizes:
                last = child(envs[n], "--child", "measure", "--requests", str(per_round),
                             "--warmup", str(args.warmup))
                timings[n] += last["timings_ms"]
                if len(timings[n]) == per_round * args.rounds:
                    print(f"{n:>7,} orders: first paint median {statistics.median(timings[n]):.1f} ms "
                          f"(min {min(timings[n]):.1f}, max {max(timings[n]):.1f}, {len(timings[n])} requests); "
                          f"{last['queries']} queries, drew {last['rows']} working, {last['finished']} finished, "
                          f"{last['fills']} fills; slowest queries (time to first row):")
                    for ms, sql in last["slowest"]:
                        print(f"          {ms:6.2f} ms  {sql}")
    finally:
        if args.keep:
            print(f"databases kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    paint = last["bytes"]
    print(f"first paint bytes (the desk page, {sizes[-1]:,} orders): HTML {paint['html']:,} (sent as it is; "
          f"{paint['html_gzip']:,} gzipped); CSS + JS {paint['assets_raw']:,} -> {paint['assets_gzip']:,} "
          "sent gzipped; "
          f"HTML + CSS + JS {paint['html'] + paint['assets_raw']:,} uncompressed -> "
          f"{paint['html'] + paint['assets_gzip']:,} as sent")
    for url, sent in paint["files"].items():
        print(f"          {sent['raw']:>9,} -> {sent['gzip']:>9,}  {url}")
    small, large = statistics.median(timings[sizes[0]]), statistics.median(timings[sizes[-1]])
    ratio = large / small
    print(f"ratio {sizes[-1]:,} / {sizes[0]:,} orders = {large:.1f} / {small:.1f} ms = {ratio:.2f} "
          f"(target <= {TARGET}) {'OK' if ratio <= TARGET else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
