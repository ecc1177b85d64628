"""What the benchmarks share: running management commands and waiting for a desk process to be ready."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` with ``env``; stop the benchmark with its output if it fails."""
    done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def wait_ready(port: int, server: subprocess.Popen, *, timeout: float = 45.0, name: str = "the desk") -> None:
    """Wait until ``/readyz`` answers 200 on ``port``; stop if ``server`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"{name} exited early with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} did not answer /readyz in time")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(server: subprocess.Popen, *, grace: float = 10.0) -> None:
    """SIGTERM the process group ``server`` leads (started with ``start_new_session=True``: rundesk, daphne,
    the engine), SIGKILL what is left after ``grace`` seconds."""
    import os
    import signal

    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait(timeout=5)


def child_pid(parent: int, needle: str, *, timeout: float = 10.0) -> int | None:
    """The pid of a child process of ``parent`` whose command line contains ``needle`` (e.g. rundesk's
    daphne), read from /proc; None if none appears within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                if ppid == parent and needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    return int(entry.name)
            except (OSError, ValueError):
                continue
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) of ``pid`` in kB, from /proc/<pid>/status;
    empty once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` has used so far (/proc/<pid>/stat); None once it is gone."""
    import os

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_env(var_dir: Path, port: int, overrides: dict[str, str]) -> dict[str, str]:
    """The caller's environment without any desk setting, plus a funded paper desk on 127.0.0.1:``port`` with
    the benchmarks' endpoints (``bench.settings``), quiet logs and ``overrides``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DESK_", "GATEWAY_", "PAPER_", "ENGINE_", "STREAM_", "SUBSCRIPTIONS", "DATABASE_URL",
                                "REDIS_URL"))}
    env.update({"DJANGO_SETTINGS_MODULE": "bench.settings", "DESK_VAR_DIR": str(var_dir),
                "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port), "GATEWAY_PROVIDER": "paper",
                "PAPER_MARKET_HOURS": "always", "PAPER_STARTING_CASH": "1000000000000",
                "DESK_DEBUG": "0", "DESK_LOG_LEVEL": "ERROR", "PYTHONUNBUFFERED": "1", **overrides})
    return env


def settle_history_order(order, *, index: int, price, fill_id: str):
    """Give an order of a prebuilt history one of the finished outcomes, spread evenly by ``index``: 65 %
    filled at ``price`` (its fill, 300 ms after it was created, is returned), 30 % cancelled, 5 % rejected.
    Call after ``django.setup()``."""
    from datetime import timedelta

    from orders.models import Fill

    roll = index % 20
    if roll < 13:
        order.order_type, order.status = "MARKET", "FILLED"
        order.filled_quantity, order.average_fill_price = order.quantity, price
        return Fill(account=order.account, order=order, broker_fill_id=fill_id, symbol=order.symbol,
                    side=order.side, quantity=order.quantity, price=price,
                    timestamp=order.created_at + timedelta(milliseconds=300))
    if roll < 19:
        order.order_type, order.status = "LIMIT", "CANCELLED"
        order.limit_price, order.status_message = price, "cancelled by request"
    else:
        order.order_type, order.status, order.reject_reason = "MARKET", "REJECTED", "INSUFFICIENT_BALANCE"
        order.status_message = "Order rejected: insufficient balance"
    return None
