"""Where the time of ``POST /v1/orders`` goes, in-process (Django test client, no server).

    .venv/bin/python bench/profile_orders.py            # ms per request in a few situations
    .venv/bin/python bench/profile_orders.py --profile  # plus a cProfile of the POST, top functions

Measures, on a fresh temporary database: the bare ninja GET; the POST with the database connection
kept open (what the test client does); the POST with the connection closed after each request (what
the server does: Django closes it at the end of every request); and the POST with 1000 / 2000
working orders on the account (the engine is off in the benchmark, so accepted orders pile up).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = '{"symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET"}'


def setup() -> tuple:
    os.environ.update({"DESK_VAR_DIR": tempfile.mkdtemp(prefix="desk-profile-"),
                       "PAPER_STARTING_CASH": "1000000000000", "DESK_LOG_LEVEL": "ERROR",
                       "DJANGO_SETTINGS_MODULE": "bench.settings"})  # GET /bench/ping
    for name in ("DATABASE_URL", "DESK_SQLITE_PATH", "GATEWAY_API_KEY", "REDIS_URL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from orders.models import Account
    from orders.services.keys import api_key_create

    call_command("migrate", verbosity=0)
    with open(os.devnull, "w") as quiet:
        call_command("desk_setup", stdout=quiet)
    key = api_key_create(account=Account.objects.get(name="demo"), name="profile", rate_limit_per_minute=0)
    return Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {key}"), Account.objects.get(name="demo")


def per_request_ms(call, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=300, help="requests per measurement")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    client, account = setup()
    from django.db import connection
    from django.utils import timezone

    from orders.models import Order

    def post():
        assert client.post("/v1/orders", BODY, content_type="application/json").status_code == 201

    def post_new_connection():
        post()
        connection.close()

    def no_working_orders():
        Order.objects.filter(account=account, status="OPEN").update(status="FILLED")

    def working_orders(count: int):
        no_working_orders()
        now = timezone.now()
        Order.objects.bulk_create([Order(account=account, symbol="AAPL", side="BUY", order_type="MARKET", quantity=1,
                                         status="OPEN", reserved_price=150, created_at=now, updated_at=now)
                                   for _ in range(count)], batch_size=500)

    for _ in range(30):
        client.get("/bench/ping")
        post()
    bare = per_request_ms(lambda: client.get("/bench/ping"), 1000)
    print(f"bare GET /bench/ping                         {bare:6.2f} ms")
    no_working_orders()
    print(f"POST, connection kept, ~0 working orders     {per_request_ms(post, args.n):6.2f} ms")
    no_working_orders()
    print(f"POST, new connection per request (as served) {per_request_ms(post_new_connection, args.n):6.2f} ms")
    for count in (1000, 2000):
        working_orders(count)
        print(f"POST, connection kept, {count} working orders  {per_request_ms(post, args.n):6.2f} ms")
    if args.profile:
        working_orders(1000)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.n):
            post_new_connection()
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(r"orders/|ninja/operation", 25)
        stats.sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(os.environ.get("DESK_VAR_DIR", "/nonexistent-desk-profile"), ignore_errors=True)
