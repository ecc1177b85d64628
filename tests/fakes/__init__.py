"""Local fakes of the real venues (Alpaca, Binance Spot, Kraken Spot), written from the specs in
``shared/reference/brokers/`` and run as their own processes on 127.0.0.1, so the desk meets a venue it did not
write: one that holds balances, takes fees, refuses, drops connections and releases legs later.

Each fake is ``python -m tests.fakes.<venue> --port 0 --ws-port 0``: it prints one line ``READY <http> <ws>`` with
its two base URLs once it listens, serves the venue's REST API on the first and its stream on the second, and
takes test instructions on ``POST /_fake/<action>`` (JSON body) beside the venue's own paths. ``FakeVenue``
starts one for a test and stops it afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


class FakeVenue:
    def __init__(self, venue: str, *args: str) -> None:
        self.venue = venue
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"tests.fakes.{venue}", "--port", "0", "--ws-port", "0", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 20
        line = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("READY "):
                break
            if not line and self.process.poll() is not None:
                break
        else:
            line = ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"fake {venue} did not start: {line!r}")
        _, self.url, self.ws_url = line.split()

    def control(self, action: str, **body) -> dict:
        """Tell the fake what to do next (add an external position, fail the next calls, release legs ...)."""
        answer = requests.post(f"{self.url}/_fake/{action}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json() if answer.content else {}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> FakeVenue:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
