"""Mixed load against a realistic book: 20 API clients and 200 /v1/ws clients on one desk, compared with a
bare django-ninja GET on the same server.

One run builds a fresh temporary DESK_VAR_DIR (``migrate``, ``desk_setup``, then ``--orders`` orders of the
demo account bulk-inserted over 200 days, ``--working`` of them still working, plus a few open positions and
one API key without rate limit per client), starts ONE ``manage.py rundesk`` (daphne + the engine,
``bench.settings``, which serves ``GET /bench/ping`` too), and then:

* a client process (asyncio + ``websockets``) opens ``--sockets`` connections on /v1/ws, answers the
  server's pings and records every order frame each socket receives;
* from this process, ``--clients`` threads, each with one keep-alive ``http.client.HTTPConnection``,
  send requests back to back:

    warm-up (the mix, not counted)
    bare GET /bench/ping          (--bare-seconds)
    the mix                       (--seconds): per 20 requests of each client, in shuffled order,
        8 x POST /v1/orders       (alternately a GTC BUY LIMIT 20 % under the market, which stays working,
                                   and a BUY/SELL 1 AAPL MARKET, which the engine fills)
        5 x GET /v1/orders        (plain, no parameters, as a naive script does)
        4 x GET /v1/positions
        3 x DELETE /v1/orders/{id} (a LIMIT order this client placed and that is still working)
    bare GET /bench/ping          (--bare-seconds)

* then every socket must have received ORDER_CREATED for every order the clients placed (201),
  ORDER_CANCELLED for every order they cancelled (200) and ORDER_FILLED for every MARKET order the
  database shows FILLED, within ``--drain`` seconds;
* daphne's VmRSS / VmHWM (/proc/<pid>/status of the daphne child of rundesk) is sampled all along.

    .venv/bin/python bench/bench_load.py                    # 20,000 orders, 20 clients, 200 sockets, 60 s
    .venv/bin/python bench/bench_load.py --orders 100000    # the memory target's book

Prints req/s, p50/p99 per operation, 5xx, lost stream events and daphne's RSS, and the ratios
``mixed req/s / bare GET req/s`` (target >= 0.4) and ``mixed p99 / bare GET p99`` (target <= 3), and RSS
against 300 MB (the target is stated for 100,000 orders and 200 sockets). Exit status 1 on any 5xx, any
other unexpected answer or transport error, a closed socket or a lost stream event; the ratios and the
RSS are reported, not enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from desk_server import (  # noqa: E402
    child_pid,
    cpu_seconds,
    free_port,
    manage,
    memory_kb,
    server_env,
    settle_history_order,
    stop_group,
    wait_ready,
)

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGET_RPS_RATIO = 0.4          # mixed req/s / bare GET req/s, at least
TARGET_P99_FACTOR = 3.0         # mixed p99 / bare GET p99, at most
TARGET_RSS_MB = 300             # daphne, with 100,000 orders and 200 sockets
POST, LIST, POSITIONS, CANCEL, BARE = ("POST /v1/orders", "GET /v1/orders", "GET /v1/positions",
                                       "DELETE /v1/orders/{id}", "GET /bench/ping")
BLOCK = (POST,) * 8 + (LIST,) * 5 + (POSITIONS,) * 4 + (CANCEL,) * 3     # 40 / 25 / 20 / 15 %
OPS = (POST, LIST, POSITIONS, CANCEL)
# the paper venue's stocks and their base prices (orders/brokers/catalogue.py): a BUY LIMIT at 80 % of it
# is inside the venue's 50 % price band and never fills (the walk's spread is a few %)
STOCKS = {"AAPL": 150, "MSFT": 400, "GOOGL": 170, "AMZN": 180, "TSLA": 250, "NVDA": 800, "SPY": 520}
HELD = ("AAPL", "MSFT", "NVDA")          # open positions of the book (GET /v1/positions marks them)
BATCH = 5000
PONG = json.dumps({"type": "pong"})


# -- building the book (a child process with Django) ------------------------------------------------------

def build(orders: int, working: int, keys: int, seed: int) -> dict:
    """``orders`` orders of the demo account over the last 200 days: ``working`` GTC LIMIT orders still
    working (far from the market, matched up to now), the rest finished (65 % filled, each with its fill,
    30 % cancelled, 5 % rejected); three open positions; ``keys`` + 1 API keys without rate limit."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from orders.models import Account, Fill, Order, Position
    from orders.services.keys import api_key_create

    rng = random.Random(seed)
    account = Account.objects.get(name="demo")
    now = timezone.now()
    start = now - timedelta(days=200)
    step = (now - start - timedelta(minutes=10)) / max(1, orders)
    working_every = max(1, orders // max(1, working)) if working else 0
    counts = Counter()
    batch_orders: list[Order] = []
    batch_fills: list[Fill] = []

    def flush() -> None:
        with transaction.atomic():
            Order.objects.bulk_create(batch_orders)
            Fill.objects.bulk_create(batch_fills)
        batch_orders.clear()
        batch_fills.clear()

    symbols = list(STOCKS)
    for i in range(orders):
        created = start + step * i
        symbol = rng.choice(symbols)
        base = Decimal(STOCKS[symbol])
        price = (base * Decimal(rng.randint(9500, 10500)) / 10000).quantize(Decimal("0.01"))
        side = rng.choice(("BUY", "SELL"))
        quantity = Decimal(rng.randint(1, 50))
        order_id = uuid.uuid4()
        order = Order(id=order_id, account=account, symbol=symbol, side=side, quantity=quantity,
                      time_in_force="GTC", created_at=created, updated_at=created + timedelta(seconds=1),
                      submitted_by="key:bench", reserved_price=price, broker_order_id=str(order_id),
                      correlation_id=uuid.uuid4())
        if working_every and i % working_every == working_every - 1 and counts["working"] < working:
            # spread over the whole history: some GTC orders rest for months
            limit = base * (Decimal("0.8") if side == "BUY" else Decimal("1.2"))
            order.order_type, order.status, order.limit_price = "LIMIT", "OPEN", limit.quantize(Decimal("0.01"))
            order.reserved_price, order.checked_until = order.limit_price, now
            counts["working"] += 1
        else:
            fill = settle_history_order(order, index=i, price=price, fill_id=f"{order_id}:1")
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
            "quantity": Decimal("25"), "average_price": Decimal(STOCKS[symbol]), "opened_at": start,
            "updated_at": now})
    made = [api_key_create(account=account, name=f"load-{n}", rate_limit_per_minute=0) for n in range(keys + 1)]
    return {"orders": Order.objects.count(), **counts, "keys": made[:-1], "stream_key": made[-1]}


# -- the /v1/ws clients (a child process: asyncio + websockets) -------------------------------------------

@dataclass
class Socket:
    created: set = field(default_factory=set)
    cancelled: set = field(default_factory=set)
    filled: set = field(default_factory=set)
    frames: int = 0
    close_code: int | None = None
    closed: bool = False


def epoch_of(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


async def stream_clients(port: int, api_key: str, count: int, drain: float) -> dict:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    url, headers = f"ws://127.0.0.1:{port}/v1/ws", {"Authorization": f"Bearer {api_key}"}
    kinds: Counter = Counter()
    errors: list[str] = []
    lags: list[float] = []          # receive time - the event's outbox timestamp, order frames
    events = {"ORDER_CREATED": "created", "ORDER_CANCELLED": "cancelled", "ORDER_FILLED": "filled"}

    async def read(ws, state: Socket) -> None:
        try:
            async for raw in ws:
                state.frames += 1
                kind = raw[10:raw.find('"', 10)] if raw.startswith('{"type": "') else "?"
                kinds[kind] += 1
                if kind == "ping":
                    await ws.send(PONG)
                elif kind == "order":
                    received = time.time()
                    frame = json.loads(raw)
                    bucket = events.get(frame.get("event"))
                    if bucket:
                        getattr(state, bucket).add(sys.intern(frame["order"]["id"]))
                    lags.append(received - epoch_of(frame["timestamp"]))
                elif kind == "error" and len(errors) < 5:
                    errors.append(raw[:300])
        except ConnectionClosed:
            pass
        state.closed, state.close_code = True, ws.close_code

    started = time.monotonic()
    sockets, states, readers = [], [], []
    for first in range(0, count, 20):                    # 20 handshakes at a time
        opened = await asyncio.gather(*(connect(url, additional_headers=headers, open_timeout=60, ping_interval=None,
                                                max_size=2**22) for _ in range(first, min(count, first + 20))))
        for ws in opened:
            state = Socket()
            sockets.append(ws)
            states.append(state)
            readers.append(asyncio.create_task(read(ws, state)))
    print(json.dumps({"ready": len(sockets), "open_seconds": round(time.monotonic() - started, 2)}), flush=True)

    line = await asyncio.to_thread(sys.stdin.readline)     # the HTTP side's record, once its load is over
    expected = {name: set(ids) for name, ids in json.loads(line or "{}").items()}
    waited = time.monotonic()

    def missing(state: Socket) -> dict[str, int]:
        return {name: len(ids - getattr(state, name)) for name, ids in expected.items()}

    while time.monotonic() - waited < drain and not all(
            state.closed or not any(missing(state).values()) for state in states):
        await asyncio.sleep(0.2)
    drained = time.monotonic() - waited
    lost = Counter()
    sockets_missing = 0
    for state in states:
        gaps = missing(state)
        lost.update(gaps)
        sockets_missing += any(gaps.values())
    closed = Counter(str(state.close_code) for state in states if state.closed)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    lags.sort()

    def pct(p: float) -> float | None:
        return lags[min(len(lags) - 1, max(0, round(p / 100 * len(lags)) - 1))] if lags else None

    return {"sockets": len(states), "expected": {k: len(v) for k, v in expected.items()}, "lost": dict(lost),
            "sockets_missing": sockets_missing, "closed_early": dict(closed), "drain_seconds": round(drained, 2),
            "frames": sum(s.frames for s in states), "kinds": dict(kinds), "errors": errors,
            "lag_p50": pct(50), "lag_p99": pct(99), "lag_max": lags[-1] if lags else None}


def stream_main(args: argparse.Namespace) -> int:
    result = asyncio.run(stream_clients(args.port, args.api_key, args.sockets, args.drain))
    print(json.dumps(result), flush=True)
    return 0


# -- the API clients (threads of this process) -------------------------------------------------------------

@dataclass
class OpStats:
    ok: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)     # unexpected answers
    transport: Counter = field(default_factory=Counter)    # exceptions
    body_bytes: int = 0
    rows: int = 0                                         # list answers: orders returned

    def merge(self, other: OpStats) -> None:
        self.ok += other.ok
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.transport.update(other.transport)
        self.body_bytes += other.body_bytes
        self.rows += other.rows

    @property
    def fivexx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


class ApiClient:
    """One script of the mix: its own key, its own keep-alive connection, the orders it placed."""

    def __init__(self, slot: int, port: int, api_key: str, run: str) -> None:
        self.slot, self.port, self.run = slot, port, run
        self.rng = random.Random(slot)
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.json_headers = {**self.headers, "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.working: list[str] = []     # its LIMIT orders, still working
        self.created: list[str] = []     # every order it placed (201)
        self.market: list[str] = []      # of those, the MARKET ones
        self.cancelled: list[str] = []   # every order it cancelled (200)
        self.placed = 0
        self.fallbacks = 0               # cancels with nothing of its own working: a LIMIT instead
        self.schedule: list[str] = []

    def call(self, stats: dict[str, OpStats], op: str, method: str, path: str, body: bytes | None,
             expect: int) -> bytes | None:
        s = stats.setdefault(op, OpStats())
        began = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=self.json_headers if body else self.headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as e:
            s.transport[type(e).__name__] += 1
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            return None
        s.latencies.append(time.perf_counter() - began)
        s.body_bytes += len(data)
        if response.status != expect:
            s.statuses[response.status] += 1
            return None
        s.ok += 1
        return data

    def post(self, stats: dict[str, OpStats], *, limit: bool) -> None:
        self.placed += 1
        client_id = f"load-{self.run}-{self.slot}-{self.placed}"
        if limit:
            symbol = self.rng.choice(list(STOCKS))
            price = Decimal(STOCKS[symbol]) * Decimal("0.8") + Decimal(self.rng.randint(0, 99)) / 100
            order = {"symbol": symbol, "side": "BUY", "quantity": "1", "order_type": "LIMIT",
                     "limit_price": str(price.quantize(Decimal("0.01"))), "time_in_force": "GTC",
                     "client_order_id": client_id}
        else:
            order = {"symbol": "AAPL", "side": "BUY" if self.placed % 4 == 2 else "SELL", "quantity": "1",
                     "order_type": "MARKET", "client_order_id": client_id}
        data = self.call(stats, POST, "POST", "/v1/orders", json.dumps(order).encode(), 201)
        if data is not None:
            order_id = json.loads(data)["id"]
            self.created.append(order_id)
            (self.working if limit else self.market).append(order_id)

    def step(self, stats: dict[str, OpStats]) -> None:
        if not self.schedule:
            self.schedule = list(BLOCK)
            self.rng.shuffle(self.schedule)
        op = self.schedule.pop()
        if op == POST:
            self.post(stats, limit=self.placed % 2 == 0)
        elif op == LIST:
            data = self.call(stats, LIST, "GET", "/v1/orders", None, 200)
            if data is not None:
                stats[LIST].rows += data.count(b'"created_at"')
        elif op == POSITIONS:
            self.call(stats, POSITIONS, "GET", "/v1/positions", None, 200)
        elif not self.working:
            self.fallbacks += 1
            self.post(stats, limit=True)
        else:
            order_id = self.working.pop(self.rng.randrange(len(self.working)))
            if self.call(stats, CANCEL, "DELETE", f"/v1/orders/{order_id}", None, 200) is not None:
                self.cancelled.append(order_id)

    def warm(self, stats: dict[str, OpStats]) -> None:
        """The mix, after two LIMIT orders first, so that a cancel early on has something to cancel."""
        if self.placed < 2:
            self.post(stats, limit=True)
        else:
            self.step(stats)

    def ping(self, stats: dict[str, OpStats]) -> None:
        self.call(stats, BARE, "GET", "/bench/ping", None, 200)


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    stats: dict[str, OpStats] = field(default_factory=dict)

    def total(self, ops=OPS) -> OpStats:
        merged = OpStats()
        for op in ops:
            if op in self.stats:
                merged.merge(self.stats[op])
        return merged

    def rps(self, op: str | None = None) -> float:
        s = self.total() if op is None else self.stats.get(op, OpStats())
        return s.ok / self.seconds if self.seconds else 0.0


def run_phase(clients: list[ApiClient], name: str, seconds: float, action: str, abort: threading.Event) -> Phase:
    """Every client, on its own thread, repeats ``action`` (``step``: the mix; ``ping``: the bare GET)
    back to back for ``seconds``."""
    barrier = threading.Barrier(len(clients) + 1)
    per_thread = [dict() for _ in clients]
    ends = [0.0] * len(clients)
    start_box: list[float] = []

    def worker(slot: int) -> None:
        client, stats = clients[slot], per_thread[slot]
        do = getattr(client, action)
        barrier.wait()
        deadline = start_box[0] + seconds
        while time.perf_counter() < deadline and not abort.is_set():
            do(stats)
        ends[slot] = time.perf_counter()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    start_box.append(time.perf_counter())
    barrier.wait()
    for t in threads:
        t.join(timeout=seconds + 300)
    phase = Phase(name, max(ends) - start_box[0])
    for stats in per_thread:
        for op, s in stats.items():
            phase.stats.setdefault(op, OpStats()).merge(s)
    return phase


# -- daphne's memory ----------------------------------------------------------------------------------------

MACHINE = "the whole machine"


def machine_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have used so far (the busy columns of /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class MemoryWatch(threading.Thread):
    """Samples VmRSS of daphne (and the engine) every ``interval`` s; sets ``abort`` past ``limit_mb``. At each
    ``mark`` it also notes the CPU time used so far by every process of ``pids`` and of ``cpu_pids``."""

    def __init__(self, pids: dict[str, int], abort: threading.Event, limit_mb: float, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids, self.abort, self.limit_kb, self.interval = pids, abort, limit_mb * 1024, interval
        self.cpu_pids: dict[str, int] = {}
        self.label = "idle"
        self.samples: list[tuple[str, str, int]] = []     # (label, process, VmRSS kB)
        self.hwm: dict[str, int] = {}
        self.cpu: dict[str, tuple[float, dict[str, float | None]]] = {}   # label -> (start, CPU seconds so far)
        self.stopped = threading.Event()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            mem = memory_kb(pid)
            if mem:
                self.samples.append((self.label, name, mem["VmRSS"]))
                self.hwm[name] = mem["VmHWM"]
                if name == "daphne" and mem["VmRSS"] > self.limit_kb:
                    self.abort.set()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()

    def mark(self, label: str) -> None:
        self.sample()
        self.label = label
        self.cpu[label] = (time.monotonic(), {**{name: cpu_seconds(pid)
                                                 for name, pid in {**self.pids, **self.cpu_pids}.items()},
                                              MACHINE: machine_cpu_seconds()})

    def cpu_share(self, label: str, until: str) -> dict[str, float]:
        """Share of one core each process used from ``mark(label)`` to ``mark(until)``."""
        (t0, before), (t1, after) = self.cpu[label], self.cpu[until]
        return {name: (after[name] - before[name]) / (t1 - t0) for name in before
                if before[name] is not None and after.get(name) is not None and t1 > t0}

    def of(self, label: str, name: str = "daphne") -> list[int]:
        return [kb for lab, n, kb in self.samples if lab == label and n == name]


# -- orchestration ------------------------------------------------------------------------------------------

def child_json(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([PYTHON, __file__, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_load {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def filled_of(var_dir: Path, order_ids: list[str]) -> list[str]:
    """Which of ``order_ids`` the database shows FILLED (Django keeps UUIDs as 32 hex digits on SQLite)."""
    db = sqlite3.connect(f"file:{var_dir / 'desk.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        by_hex = {uuid.UUID(i).hex: i for i in order_ids}
        keys, filled = list(by_hex), []
        for first in range(0, len(keys), 500):
            chunk = keys[first:first + 500]
            rows = db.execute(f"SELECT id FROM orders_order WHERE status = 'FILLED' AND id IN "
                              f"({','.join('?' * len(chunk))})", chunk).fetchall()
            filled += [by_hex[r[0]] for r in rows]
        return filled
    finally:
        db.close()


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def row(label: str, rps: float, s: OpStats) -> str:
    other = sum(s.statuses.values()) - s.fivexx + sum(s.transport.values())
    size = s.body_bytes / len(s.latencies) if s.latencies else 0
    rows = f"  {s.rows / s.ok:,.0f} orders/answer" if s.rows and s.ok else ""
    return (f"  {label:30} {rps:7.1f} req/s  p50 {percentile(s.latencies, 50) * 1000:8.1f} ms  "
            f"p99 {percentile(s.latencies, 99) * 1000:8.1f} ms  5xx {s.fivexx:3}  other {other:3}  "
            f"{size / 1024:8.1f} kB/answer{rows}")


def show(phase: Phase) -> Phase:
    """Print a phase's lines as soon as it is over (the mix: all requests, then each operation)."""
    if BARE in phase.stats:
        print(row(f"{phase.name} ({phase.seconds:.0f} s)", phase.rps(BARE), phase.stats[BARE]), flush=True)
        return phase
    print(row(f"{phase.name}, all ({phase.seconds:.0f} s)", phase.rps(), phase.total()))
    if phase.name != "warm-up":
        for op in OPS:
            print(row(f"  {op}", phase.rps(op), phase.stats.get(op, OpStats())))
    sys.stdout.flush()
    return phase


def mb(kb: float) -> str:
    return f"{kb / 1024:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the mixed load (60)")
    parser.add_argument("--bare-seconds", type=float, default=10.0,
                        help="length of each bare GET round, one before and one after the mix (10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of the mix first, not counted (3)")
    parser.add_argument("--clients", type=int, default=20, help="API clients, one thread and connection each (20)")
    parser.add_argument("--sockets", type=int, default=200, help="/v1/ws clients (200)")
    parser.add_argument("--orders", type=int, default=20_000, help="orders on the book before the run (20,000)")
    parser.add_argument("--working", type=int, default=300, help="of those, still working (300)")
    parser.add_argument("--drain", type=float, default=15.0, help="seconds the sockets may take to catch up (15)")
    parser.add_argument("--no-engine", action="store_true", help="daphne alone (MARKET orders then stay OPEN)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="server setting for this run, e.g. STREAM_QUEUE_SIZE=4096 (repeatable)")
    parser.add_argument("--max-rss-mb", type=float, default=4000,
                        help="stop the load if daphne grows past this (4000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary DESK_VAR_DIR and its logs")
    parser.add_argument("--child", choices=("build", "stream"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--api-key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "build":
        print(json.dumps(build(args.orders, min(args.working, args.orders), args.clients, seed=1)))
        return 0
    if args.child == "stream":
        return stream_main(args)

    began = time.monotonic()
    overrides = dict(item.split("=", 1) for item in args.set)
    var_dir = Path(tempfile.mkdtemp(prefix="desk-bench-load-"))
    port = free_port()
    env = server_env(var_dir, port, overrides)
    server = stream = watch = None
    failed = True
    log = open(var_dir / "rundesk.log", "w")  # noqa: SIM115 - closed in finally
    stream_log = open(var_dir / "stream.log", "w")  # noqa: SIM115 - closed in finally
    try:
        manage(env, "migrate", "--no-input", "-v0")
        manage(env, "desk_setup")
        t0 = time.monotonic()
        book = child_json(env, "--child", "build", "--orders", str(args.orders), "--working", str(args.working),
                          "--clients", str(args.clients))
        counts = {k: v for k, v in book.items() if k not in ("keys", "stream_key")}
        print(f"book: {counts} built in {time.monotonic() - t0:.1f} s")

        command = [PYTHON, "manage.py", "rundesk", *(["--no-engine"] if args.no_engine else [])]
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        wait_ready(port, server, name="rundesk")
        daphne = child_pid(server.pid, "daphne")
        engine = child_pid(server.pid, "run_engine", timeout=1) if not args.no_engine else None
        if daphne is None:
            raise SystemExit("no daphne child of rundesk found")
        pids = {"daphne": daphne, **({"engine": engine} if engine else {})}
        abort = threading.Event()
        watch = MemoryWatch(pids, abort, args.max_rss_mb)
        watch.start()
        print(f"rundesk pid {server.pid} (daphne {daphne}, engine {engine or 'off'}) on 127.0.0.1:{port}, "
              f"DESK_VAR_DIR={var_dir}{', settings ' + str(overrides) if overrides else ''}")

        watch.mark("sockets")
        stream = subprocess.Popen([PYTHON, __file__, "--child", "stream", "--port", str(port), "--api-key",
                                   book["stream_key"], "--sockets", str(args.sockets), "--drain", str(args.drain)],
                                  cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stream_log,
                                  text=True)
        watch.cpu_pids = {"API clients (this process)": os.getpid(), "stream clients": stream.pid}
        ready = json.loads(stream.stdout.readline() or "{}")
        if ready.get("ready") != args.sockets:
            raise SystemExit(f"the stream clients did not connect: {ready} (see {var_dir / 'stream.log'})")
        print(f"{args.sockets} /v1/ws clients connected in {ready['open_seconds']} s; {args.clients} API clients, "
              f"warm-up {args.warmup:g} s, bare GET {args.bare_seconds:g} s, mix {args.seconds:g} s, "
              f"bare GET {args.bare_seconds:g} s")

        run_id = uuid.uuid4().hex[:6]
        clients = [ApiClient(slot, port, key, run_id) for slot, key in enumerate(book["keys"])]
        watch.mark("warm-up")
        print(f"phase / operation (each client sends its requests back to back; {len(clients)} clients)")
        warm = show(run_phase(clients, "warm-up", args.warmup, "warm", abort))
        watch.mark("bare")
        bare_before = show(run_phase(clients, "bare GET before", args.bare_seconds, "ping", abort))
        watch.mark("mix")
        mix = show(run_phase(clients, "mix", args.seconds, "step", abort))
        watch.mark("bare-after")
        bare_after = show(run_phase(clients, "bare GET after", args.bare_seconds, "ping", abort))
        watch.mark("drain")
        for client in clients:
            client.conn.close()

        created = [i for c in clients for i in c.created]
        cancelled = [i for c in clients for i in c.cancelled]
        market = [i for c in clients for i in c.market]
        filled = filled_of(var_dir, market)
        stream.stdin.write(json.dumps({"created": created, "cancelled": cancelled, "filled": filled}) + "\n")
        stream.stdin.flush()
        received = json.loads(stream.stdout.readline() or "{}")
        stream.wait(timeout=60)
        watch.mark("end")

        # -- report ----------------------------------------------------------------------------------------
        fallbacks = sum(c.fallbacks for c in clients)
        if fallbacks:
            print(f"  ({fallbacks} cancels found nothing of their client's working and placed a LIMIT instead)")

        bare_rps = (bare_before.rps(BARE) + bare_after.rps(BARE)) / 2
        bare_lat = [x for p in (bare_before, bare_after) for x in p.stats.get(BARE, OpStats()).latencies]
        mix_all = mix.total()
        rps_ratio = mix.rps() / bare_rps if bare_rps else 0.0
        p99_factor = percentile(mix_all.latencies, 99) / percentile(bare_lat, 99) if bare_lat else float("inf")
        phases = (warm, bare_before, mix, bare_after)
        fivexx = sum(p.total((*OPS, BARE)).fivexx for p in phases)
        unexpected = Counter()
        for p in phases:
            s = p.total((*OPS, BARE))
            unexpected.update({str(k): n for k, n in s.statuses.items() if k < 500})
            unexpected.update(s.transport)

        lost = sum(received.get("lost", {}).values())
        closed = sum(received.get("closed_early", {}).values())
        print()
        print(f"stream: {received.get('sockets')} sockets, {received.get('frames', 0):,} frames "
              f"{received.get('kinds')}; expected per socket {received.get('expected')}; "
              f"caught up {received.get('drain_seconds')} s after the load")
        lag = {k: received.get(k) for k in ("lag_p50", "lag_p99", "lag_max")}
        if lag["lag_p50"] is not None:
            print(f"        order frame lag (outbox row -> client): p50 {lag['lag_p50'] * 1000:.0f} ms, "
                  f"p99 {lag['lag_p99'] * 1000:.0f} ms, max {lag['lag_max'] * 1000:.0f} ms")
        print(f"        lost events {lost} {received.get('lost')} on {received.get('sockets_missing')} sockets; "
              f"sockets closed by the server {closed} {received.get('closed_early') or ''}")
        for error in received.get("errors", []):
            print(f"        error frame: {error}")

        # mark(label) takes a sample under the label before it: the last "idle" sample is daphne just before
        # the sockets opened, the last "sockets" one with them open, the last "drain" one at the end
        idle, with_sockets = watch.of("idle"), watch.of("sockets")
        in_mix = watch.of("mix")
        end = watch.of("drain")
        print(f"daphne RSS: {mb(idle[-1]) if idle else '?'} before the sockets, "
              f"{mb(with_sockets[-1]) if with_sockets else '?'} with {args.sockets} sockets, "
              f"{mb(in_mix[0]) if in_mix else '?'} -> max {mb(max(in_mix)) if in_mix else '?'} during the mix, "
              f"{mb(end[-1]) if end else '?'} at the end; peak (VmHWM) {mb(watch.hwm.get('daphne', 0))}")
        if len(in_mix) > 20:
            step = max(1, len(in_mix) // 6)
            print("daphne RSS during the mix, every ~{:.0f} s: {}".format(
                step * watch.interval, ", ".join(mb(kb) for kb in [*in_mix[::step], in_mix[-1]])))
        if engine:
            engine_mix = watch.of("mix", "engine")
            print(f"engine RSS: max {mb(max(engine_mix)) if engine_mix else '?'} during the mix")
        for label, until, what in (("bare", "mix", "the bare GET before"), ("mix", "bare-after", "the mix")):
            shares = watch.cpu_share(label, until)
            print(f"CPU during {what}, share of one core: "
                  + ", ".join(f"{name} {share:.0%}" for name, share in shares.items() if name != MACHINE)
                  + f"; {MACHINE} {shares.get(MACHINE, 0):.0%} of {os.cpu_count() * 100}%")
        if abort.is_set():
            print(f"ERROR: the load was stopped: daphne grew past --max-rss-mb {args.max_rss_mb:g}")

        print()
        print(f"mixed req/s / bare GET req/s = {mix.rps():.1f} / {bare_rps:.1f} = {rps_ratio:.2f}  "
              f"({'meets' if rps_ratio >= TARGET_RPS_RATIO else 'BELOW'} target >= {TARGET_RPS_RATIO})")
        print(f"mixed p99 / bare GET p99     = {percentile(mix_all.latencies, 99) * 1000:.1f} / "
              f"{percentile(bare_lat, 99) * 1000:.1f} ms = {p99_factor:.1f}  "
              f"({'meets' if p99_factor <= TARGET_P99_FACTOR else 'ABOVE'} target <= {TARGET_P99_FACTOR:g})")
        peak = watch.hwm.get("daphne", 0) / 1024
        print(f"daphne peak RSS = {peak:.0f} MB with {book['orders']:,} orders and {args.sockets} sockets  "
              f"({'meets' if peak <= TARGET_RSS_MB else 'ABOVE'} target <= {TARGET_RSS_MB} MB, stated for 100,000 "
              f"orders and 200 sockets)")
        print(f"5xx {fivexx}, other unexpected answers {dict(unexpected) or 0}, lost stream events {lost}, "
              f"sockets closed {closed}   ({time.monotonic() - began:.0f} s in all)")
        failed = bool(fivexx or unexpected or lost or closed or abort.is_set()
                      or received.get("sockets") != args.sockets)
    finally:
        if watch is not None:
            watch.stopped.set()
        if stream is not None and stream.poll() is None:
            stream.kill()
            stream.wait()
        if server is not None:
            stop_group(server)
        log.close()
        stream_log.close()
        if failed or args.keep:
            print(f"logs kept in {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
