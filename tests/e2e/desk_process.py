"""Helpers to run the real desk processes (web server, engine, management commands) on a private
SQLite file and port, the way a user runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Desk:
    def __init__(self, var_dir: Path, **env: str) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        self.env = {**os.environ, "DESK_VAR_DIR": str(var_dir), "GATEWAY_PORT": str(self.port),
                    "PYTHONUNBUFFERED": "1", "DESK_VERIFY_EXPOSURE": "1", **env}
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        for name in ("DESK_DEMO_PASSWORD", "DESK_RISK_PASSWORD"):
            if name in env:                     # a password the test chose, not a file the caller's env names
                self.env.pop(f"{name}_FILE", None)
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=check)

    def start(self, *args: str, log_name: str) -> subprocess.Popen:
        log = open(self.var_dir / f"{log_name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def log(self, log_name: str) -> str:
        return (self.var_dir / f"{log_name}.log").read_text()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:      # not listening yet, or too busy to answer in time
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the desk did not become ready on {self.url}")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


@contextmanager
def running_desk(var_dir: Path, **env: str):
    desk = Desk(var_dir, **env)
    desk.manage("migrate", "--no-input", "-v0")
    desk.manage("desk_setup")
    try:
        yield desk
    finally:
        desk.stop_all()


def wait_for(predicate, *, timeout: float = 20, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")
