"""Injectable faults for the paper venue, shared by every process through one small JSON file.

    faults.reject_next(3, kind="STOP", reason="INSUFFICIENT_BALANCE")   # the next 3 STOP orders are refused
    faults.set_unavailable(True)                                      # every call answers 503
    faults.set_latency(250)                                           # every call waits 250 ms
    faults.shock("AAPL", "-5", from_second=s)                         # AAPL 5 % below its price walk from s on

The file is locked while it is read and changed, so a count of N rejections
rejects exactly N orders even when the web server and the engine both submit.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

from orders.domain.money import format_decimal


@dataclass
class FaultState:
    rejections: list[dict] = field(default_factory=list)   # [{"kind": "*", "remaining": 2, "reason": "..."}]
    unavailable: bool = False
    latency_ms: int = 0
    shocks: dict = field(default_factory=dict)            # {"AAPL": {"pct": "-5", "from": 1767225600}}


class PaperFaults:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_suffix(".lock")

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> FaultState:
        try:
            raw = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return FaultState()
        return FaultState(rejections=list(raw.get("rejections", [])), unavailable=bool(raw.get("unavailable")),
                          latency_ms=int(raw.get("latency_ms", 0)), shocks=dict(raw.get("shocks", {})))

    def _write(self, state: FaultState) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state)))
        tmp.replace(self.path)

    def state(self) -> FaultState:
        if not self.path.exists():
            return FaultState()
        return self._read()

    def reject_next(self, count: int, *, kind: str = "*", reason: str = "UNKNOWN",
                    message: str = "rejected by injected fault") -> None:
        with self._locked():
            state = self._read()
            state.rejections.append({"kind": kind.upper(), "remaining": count, "reason": reason,
                                     "message": message})
            self._write(state)

    def set_unavailable(self, unavailable: bool) -> None:
        with self._locked():
            state = self._read()
            state.unavailable = unavailable
            self._write(state)

    def set_latency(self, milliseconds: int) -> None:
        with self._locked():
            state = self._read()
            state.latency_ms = max(0, milliseconds)
            self._write(state)

    def shock(self, symbol: str, pct: str, *, from_second: int, cumulative: bool = False) -> str:
        """Price ``symbol`` at its price walk × (1 + ``pct``/100) from ``from_second`` (seconds since the walk's
        epoch) on. Each symbol has one shock, measured from the walk, so a new one *replaces* the last: two
        shocks of -5 leave the price 5 % below the walk, and one of 0 undoes it. ``cumulative`` compounds
        ``pct`` onto the shock in force instead: two of -5 leave it 9.75 % below. Either way the earlier shock
        no longer applies to any second, past ones included. Returns the percentage now in force."""
        with self._locked():
            state = self._read()
            earlier = state.shocks.get(symbol)
            if cumulative and earlier is not None:
                pct = format_decimal(((1 + Decimal(earlier["pct"]) / 100) * (1 + Decimal(str(pct)) / 100) - 1) * 100)
            state.shocks[symbol] = {"pct": str(pct), "from": int(from_second)}
            self._write(state)
            return str(pct)

    def clear(self) -> None:
        with self._locked():
            self._write(FaultState())

    def take_rejection(self, kind: str) -> dict | None:
        """Consume one pending rejection that applies to an order of ``kind``, if any."""
        if not self.path.exists():
            return None
        with self._locked():
            state = self._read()
            for rule in state.rejections:
                if rule["remaining"] > 0 and rule["kind"] in ("*", kind.upper()):
                    rule["remaining"] -= 1
                    state.rejections = [r for r in state.rejections if r["remaining"] > 0]
                    self._write(state)
                    return rule
        return None
