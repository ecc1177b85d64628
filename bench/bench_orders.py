"""How fast is ``POST /v1/orders`` compared with a bare django-ninja endpoint on the same server?

One run starts ONE daphne process on a fresh temporary DESK_VAR_DIR (migrated, ``desk_setup``, an
API key with no rate limit, ``bench.settings`` serving ``/bench/ping``, the engine NOT running so only the HTTP
path is measured), then drives it from this process with N keep-alive connections (one thread and
one ``http.client.HTTPConnection`` each):

    warm-up GET, warm-up POST, then GET, POST, GET, POST, ...   (--rounds pairs, --seconds each)

and prints requests/s (median over rounds), p50/p99 latency and ``post_orders_rps / bare_get_rps``.

    .venv/bin/python bench/bench_orders.py [--seconds 10] [--rounds 2] [--connections 8]

Exit status 0 when every request got its expected answer (200 for the GET, 201 for the POST)
and every accepted order is in the database; 1 otherwise. The ratio is reported, not enforced.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from desk_server import manage, wait_ready  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGET_RATIO = 0.5
ORDER_BODY = json.dumps({"symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET"}).encode()


@dataclass
class Round:
    name: str
    seconds: float
    count: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    expect: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(var_dir: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "DATABASE_URL_FILE", "DESK_SQLITE_PATH", "REDIS_URL", "REDIS_URL_FILE",
                 "GATEWAY_API_KEY", "GATEWAY_API_KEY_FILE", "DESK_ALLOWED_HOSTS"):
        env.pop(name, None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "bench.settings",   # the desk plus GET /bench/ping
        "DESK_VAR_DIR": str(var_dir),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_PROVIDER": "paper",
        "PAPER_MARKET_HOURS": "always",
        "PAPER_STARTING_CASH": "1000000000000",   # a trillion: every BUY 1 AAPL of the run is funded
        "DESK_DEBUG": "0",
        "DESK_LOG_LEVEL": "ERROR",
        "PYTHONUNBUFFERED": "1",
    })
    return env






def run_round(port: int, target: Target, seconds: float, connections: int) -> Round:
    """``connections`` threads, each with its own keep-alive connection, send ``target`` back to back."""
    barrier = threading.Barrier(connections + 1)
    per_thread: list[Round] = [Round(target.name, seconds) for _ in range(connections)]
    ends = [0.0] * connections
    start_box: list[float] = []

    def worker(slot: int) -> None:
        result = per_thread[slot]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        barrier.wait()
        deadline = start_box[0] + seconds
        perf = time.perf_counter
        while True:
            began = perf()
            if began >= deadline:
                break
            try:
                conn.request(target.method, target.path, body=target.body, headers=target.headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as e:
                result.errors[type(e).__name__] = result.errors.get(type(e).__name__, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            result.latencies.append(perf() - began)
            if status == target.expect:
                result.count += 1
            else:
                result.errors[str(status)] = result.errors.get(str(status), 0) + 1
        ends[slot] = perf()
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    start_box.append(time.perf_counter())
    barrier.wait()
    for t in threads:
        t.join(timeout=seconds + 60)
    merged = Round(target.name, max(ends) - start_box[0])
    for r in per_thread:
        merged.count += r.count
        merged.latencies.extend(r.latencies)
        for key, n in r.errors.items():
            merged.errors[key] = merged.errors.get(key, 0) + n
    return merged


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def summarise(rounds: list[Round]) -> dict[str, float]:
    latencies = [x for r in rounds for x in r.latencies]
    return {"rps": statistics.median(r.rps for r in rounds), "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "requests": sum(r.count for r in rounds)}


def count_orders(var_dir: Path, *, status: str | None = None) -> int:
    """Orders in the server's database (read-only, between rounds), optionally of one status."""
    db = sqlite3.connect(f"file:{var_dir / 'desk.sqlite3'}?mode=ro", uri=True, timeout=20)
    try:
        if status is None:
            return db.execute("SELECT COUNT(*) FROM orders_order").fetchone()[0]
        return db.execute("SELECT COUNT(*) FROM orders_order WHERE status = ?", (status,)).fetchone()[0]
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measured round (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per endpoint (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="GET/POST pairs to alternate (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary DESK_VAR_DIR")
    args = parser.parse_args(argv)

    var_dir = Path(tempfile.mkdtemp(prefix="desk-bench-"))
    port = free_port()
    env = server_env(var_dir, port)
    server = None
    log_file = open(var_dir / "daphne.log", "w")  # closed in finally
    failed = False
    try:
        manage(env, "migrate", "--no-input", "-v0")
        manage(env, "desk_setup")
        api_key = manage(env, "create_api_key", "demo", "--name", "bench", "--rate-limit", "0").strip().splitlines()[-1]
        server = subprocess.Popen([PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                   "bench.asgi:application"], cwd=ROOT, env=env, stdout=log_file,
                                  stderr=subprocess.STDOUT)
        wait_ready(port, server, name="daphne")

        get = Target("bare GET /bench/ping", "GET", "/bench/ping", None, {}, 200)
        post = Target("POST /v1/orders", "POST", "/v1/orders", ORDER_BODY,
                      {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}, 201)
        print(f"daphne pid {server.pid} on 127.0.0.1:{port}, DESK_VAR_DIR={var_dir}")
        print(f"{args.connections} keep-alive connections, warm-up {args.warmup:g}s each, "
              f"{args.rounds} x (GET, POST) rounds of {args.seconds:g}s")

        for target in (get, post):
            warm = run_round(port, target, args.warmup, args.connections)
            if warm.errors:
                print(f"  warm-up {target.name}: errors {warm.errors}")
                failed = True
        results: dict[str, list[Round]] = {get.name: [], post.name: []}
        for i in range(args.rounds):
            for target in (get, post):
                r = run_round(port, target, args.seconds, args.connections)
                results[target.name].append(r)
                errors = f"  errors {r.errors}" if r.errors else ""
                # the engine is off, so every accepted MARKET order stays OPEN and is re-read by the
                # pre-trade buying-power check of every later POST: show how many there are
                working = f"  ({count_orders(var_dir, status='OPEN')} working orders after)" if target is post else ""
                print(f"  round {i + 1} {target.name:22} {r.rps:8.1f} req/s  "
                      f"p50 {percentile(r.latencies, 50) * 1000:6.2f} ms  "
                      f"p99 {percentile(r.latencies, 99) * 1000:6.2f} ms{working}{errors}")
                failed = failed or bool(r.errors)

        bare, orders = summarise(results[get.name]), summarise(results[post.name])
        ratio = orders["rps"] / bare["rps"] if bare["rps"] else 0.0
        accepted = sum(r.count for r in results[post.name])
        persisted = count_orders(var_dir)
        print()
        for label, s in (("bare_get_rps", bare), ("post_orders_rps", orders)):
            print(f"{label:16} {s['rps']:9.1f}   p50 {s['p50_ms']:6.2f} ms   p99 {s['p99_ms']:6.2f} ms")
        verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
        print(f"ratio post_orders_rps / bare_get_rps = {ratio:.3f}  ({verdict} target {TARGET_RATIO})")
        print(f"orders persisted: {persisted} (>= {accepted} accepted in measured rounds, plus warm-up)")
        if persisted < accepted:
            print("ERROR: fewer orders in the database than 201 answers")
            failed = True
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log_file.close()
        if failed:
            print(f"server log: {var_dir / 'daphne.log'}")
        if not args.keep and not failed:
            shutil.rmtree(var_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
