"""How long does a fill take to reach 200 /v1/ws clients, compared with a bare Channels group broadcast
to 200 sockets of the same server?

One run starts ONE desk (``manage.py rundesk``: daphne + the engine) on a fresh temporary DESK_VAR_DIR
(migrated, ``desk_setup``, an API key without rate limit, ``bench.settings``), then runs two
measurements, each from its own client process (asyncio + ``websockets``) holding ``--clients``
connections:

* bare: the client asks the server (one message on /bench/ws) to ``group_send`` to group "bench"; every
  socket of the group gets an order-sized frame carrying ``sent_at = time.time()`` taken inside the
  server. Latency = receive time - sent_at.
* fills: MARKET orders posted over REST ``--spacing`` apart; the engine fills them at its next tick.
  Latency = receive time of ORDER_FILLED - the fill's time (``order.updated_at``, stamped by the engine
  when it applied the fill). The wait for the engine's tick is deliberately not counted.

Clock: every timestamp is ``time.time()`` of one machine (server, engine and client processes).

    .venv/bin/python bench/bench_stream.py [--clients 200] [--events 30] [--spacing 0.2]

Prints p50/p99 of both and ``fill_p99 / bare_p99`` (target <= 1.5), plus where a fill's time goes.
Exit status 1 when a client missed a frame or a measurement failed; the ratio is reported, not enforced.

The server half (``BareBroadcastConsumer``) is mounted at /bench/ws by ``bench/asgi.py``, the ASGI application
of the benchmarks' settings (``bench.settings``); the desk's own application does not have it.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from channels.generic.websocket import AsyncWebsocketConsumer
from desk_server import free_port, manage, server_env, stop_group, wait_ready  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGET_RATIO = 1.5
BENCH_GROUP = "bench"
ORDER_BODY = json.dumps({"symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET"})
# what the bare broadcast carries: a frame the size and shape of a real ORDER_FILLED, so both paths
# pay the same serialisation and framing per socket
SAMPLE_FRAME = {"type": "order", "event": "ORDER_FILLED", "timestamp": "2026-03-02T15:00:00.250000Z", "order": {
    "id": "5b0f6f64-3c4e-4f57-9a57-0d0c1f1e7a10", "symbol": "AAPL", "side": "BUY", "order_type": "MARKET",
    "quantity": "1", "filled_quantity": "1", "remaining_quantity": "0", "average_fill_price": "150.1234",
    "status": "FILLED", "reduce_only": False, "post_only": False, "hidden": False, "time_in_force": "GTC",
    "correlation_id": "0c8e4d51-8f0e-4d2e-9a55-1d8c0f7c2b11", "position_id": "paper-pos-AAPL",
    "created_at": "2026-03-02T15:00:00.010000Z", "updated_at": "2026-03-02T15:00:00.250000Z"}}


# -- server side: the baseline ---------------------------------------------------------------------------

class BareBroadcastConsumer(AsyncWebsocketConsumer):
    """Joins group "bench" and forwards every group message to its socket. A text frame
    ``{"type": "broadcast", "seq": n}`` makes the server ``group_send`` one, stamped with ``sent_at``."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(BENCH_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        await self.channel_layer.group_discard(BENCH_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        message = json.loads(text_data or "{}")
        if message.get("type") == "broadcast":
            await self.channel_layer.group_send(BENCH_GROUP, {"type": "bench.message", "seq": message.get("seq"),
                                                              "sent_at": time.time()})

    async def bench_message(self, event: dict) -> None:
        await self.send(text_data=json.dumps({**SAMPLE_FRAME, "seq": event["seq"], "sent_at": event["sent_at"]}))


# -- client side (a separate process per measurement) ---------------------------------------------------

def epoch_of(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


async def open_sockets(url: str, count: int, headers: dict[str, str]) -> list:
    from websockets.asyncio.client import connect

    sockets = []
    for start in range(0, count, 20):                    # 20 handshakes at a time
        sockets += await asyncio.gather(*(connect(url, additional_headers=headers, open_timeout=60,
                                                  ping_interval=None, max_size=2**20)
                                          for _ in range(start, min(count, start + 20))))
    return sockets


async def wait_until(condition, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def post_order(port: int, api_key: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/orders", body=ORDER_BODY,
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 201:
            raise RuntimeError(f"POST /v1/orders answered {response.status}: {body[:200]!r}")
        return json.loads(body)["id"]
    finally:
        conn.close()


async def measure_bare(port: int, clients: int, events: int, spacing: float, warmup: int) -> dict:
    sockets = await open_sockets(f"ws://127.0.0.1:{port}/bench/ws", clients, {})
    samples: list[tuple[int, float]] = []

    async def read(ws) -> None:
        async for raw in ws:
            received = time.time()
            message = json.loads(raw)
            samples.append((message["seq"], received - message["sent_at"]))

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    await asyncio.sleep(1.0)
    for seq in range(warmup + events):
        await sockets[0].send(json.dumps({"type": "broadcast", "seq": seq}))
        await asyncio.sleep(spacing)
    complete = await wait_until(lambda: len(samples) >= clients * (warmup + events), timeout=30)
    await close_all(sockets, readers)
    measured = [(seq, latency) for seq, latency in samples if seq >= warmup]
    return {"latencies": [latency for _, latency in measured], "events": [str(seq) for seq, _ in measured],
            "expected": clients * events, "complete": complete}


async def measure_fills(port: int, api_key: str, clients: int, events: int, spacing: float, warmup: int) -> dict:
    sockets = await open_sockets(f"ws://127.0.0.1:{port}/v1/ws", clients, {"Authorization": f"Bearer {api_key}"})
    samples: list[tuple[str, float, float, float]] = []   # order id, received - fill, received - event, event - fill

    async def read(ws) -> None:
        async for raw in ws:
            received = time.time()
            if '"ORDER_FILLED"' not in raw:
                continue                                   # quotes, candles, ORDER_CREATED ...
            frame = json.loads(raw)
            filled_at, emitted_at = epoch_of(frame["order"]["updated_at"]), epoch_of(frame["timestamp"])
            samples.append((frame["order"]["id"], received - filled_at, received - emitted_at, emitted_at - filled_at))

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    await asyncio.sleep(1.0)
    order_ids = []
    for _ in range(warmup + events):
        order_ids.append(await asyncio.to_thread(post_order, port, api_key))
        await asyncio.sleep(spacing)
    complete = await wait_until(lambda: len(samples) >= clients * (warmup + events), timeout=30)
    await close_all(sockets, readers)
    counted = set(order_ids[warmup:])
    measured = [s for s in samples if s[0] in counted]
    return {"latencies": [s[1] for s in measured], "events": [s[0] for s in measured],
            "after_event": [s[2] for s in measured],
            "event_after_fill": [s[3] for s in measured], "expected": clients * events, "complete": complete}


async def close_all(sockets: list, readers: list) -> None:
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def client_main(args: argparse.Namespace) -> int:
    if args.client == "bare":
        result = asyncio.run(measure_bare(args.port, args.clients, args.events, args.spacing, args.warmup))
    else:
        result = asyncio.run(measure_fills(args.port, args.api_key, args.clients, args.events, args.spacing,
                                           args.warmup))
    print(json.dumps(result))
    return 0


# -- orchestration -----------------------------------------------------------------------------------------





def run_client(kind: str, args: argparse.Namespace, port: int, api_key: str) -> dict:
    command = [PYTHON, str(Path(__file__).resolve()), "--client", kind, "--port", str(port), "--api-key", api_key,
               "--clients", str(args.clients), "--events", str(args.events), "--spacing", str(args.spacing),
               "--warmup", str(args.warmup)]
    timeout = 120 + (args.events + args.warmup) * args.spacing
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"the {kind} client failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def line(label: str, values: list[float]) -> str:
    return (f"{label:38} p50 {percentile(values, 50) * 1000:7.2f} ms   p99 {percentile(values, 99) * 1000:7.2f} ms"
            f"   max {max(values, default=float('nan')) * 1000:7.2f} ms   n={len(values)}")


def first_and_spread(result: dict) -> tuple[list[float], list[float]]:
    """Per event: the latency of the first socket served, and how much later the last one got it."""
    by_event: dict[str, list[float]] = {}
    for event, latency in zip(result["events"], result["latencies"], strict=True):
        by_event.setdefault(event, []).append(latency)
    return [min(v) for v in by_event.values()], [max(v) - min(v) for v in by_event.values()]


def report(bare: dict, fills: dict) -> tuple[float, bool]:
    bare_p99, fill_p99 = percentile(bare["latencies"], 99), percentile(fills["latencies"], 99)
    ratio = fill_p99 / bare_p99 if bare_p99 > 0 else float("inf")
    print(line("bare group broadcast", bare["latencies"]))
    print(line("fill -> ORDER_FILLED on /v1/ws", fills["latencies"]))
    print("  where the time goes:")
    for name, result in (("bare", bare), ("fills", fills)):
        first, spread = first_and_spread(result)
        print(line(f"    {name}: first socket served", first))
        print(line(f"    {name}: last - first socket", spread))
    print(line("    fills: fill -> outbox row (engine)", fills["event_after_fill"]))
    print(line("    fills: outbox row -> client", fills["after_event"]))
    verdict = "meets" if ratio <= TARGET_RATIO else "ABOVE"
    print(f"ratio fill_p99 / bare_p99 = {ratio:.2f}  ({verdict} target {TARGET_RATIO})")
    missing = [(name, r["expected"] - len(r["latencies"])) for name, r in (("bare", bare), ("fills", fills))]
    ok = all(r["complete"] and len(r["latencies"]) == r["expected"] for r in (bare, fills))
    if not ok:
        print(f"ERROR: frames missing {missing}")
    return ratio, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="websocket connections per measurement (200)")
    parser.add_argument("--events", type=int, default=30, help="fills / broadcasts measured (30)")
    parser.add_argument("--spacing", type=float, default=0.2, help="seconds between orders / broadcasts (0.2)")
    parser.add_argument("--warmup", type=int, default=3, help="events sent first and not counted (3)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="server setting for this run, e.g. STREAM_POLL_SECONDS=0.005 (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary DESK_VAR_DIR and its logs")
    parser.add_argument("--client", choices=("bare", "fills"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--api-key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return client_main(args)

    overrides = dict(item.split("=", 1) for item in args.set)
    var_dir = Path(tempfile.mkdtemp(prefix="desk-bench-stream-"))
    port = free_port()
    env = server_env(var_dir, port, overrides)
    server = None
    ok = False
    log = open(var_dir / "rundesk.log", "w")  # noqa: SIM115 - closed in finally
    try:
        manage(env, "migrate", "--no-input", "-v0")
        manage(env, "desk_setup")
        api_key = manage(env, "create_api_key", "demo", "--name", "bench", "--rate-limit", "0").strip().splitlines()[-1]
        server = subprocess.Popen([PYTHON, "manage.py", "rundesk"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(port, server, name="rundesk")
        print(f"rundesk pid {server.pid} (daphne + engine) on 127.0.0.1:{port}, DESK_VAR_DIR={var_dir}")
        print(f"{args.clients} clients per measurement, {args.events} events {args.spacing:g}s apart "
              f"(+{args.warmup} warm-up){', settings ' + str(overrides) if overrides else ''}")
        bare = run_client("bare", args, port, api_key)
        fills = run_client("fills", args, port, api_key)
        _, ok = report(bare, fills)
    finally:
        if server is not None:
            stop_group(server)
        log.close()
        if not ok or args.keep:
            print(f"logs kept in {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
