"""Injectable faults for the paper venue, shared by every process through one small JSON file.

    faults.reject_next(3, kind="STOP", reason="INSUFFICIENT_BALANCE")   # the next 3 STOP orders are refused
    faults.set_unavailable(True)                                      # every call answers 503
    faults.set_latency(250)                                           # every call waits 250 ms
    faults.set_latency(3000, exits_only=True)                         # only placing exit legs waits 3 s
    faults.shock("AAPL", "-5", from_second=s)                         # AAPL 5 % below its price walk from s on
    faults.freeze_quotes(True, at_second=s)                           # every quote stays the one of second s
    faults.refuse_cancels(1)                                          # the venue refuses the next cancel

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
    latency_exits_only: bool = False                      # the latency delays placing exit legs only
    shocks: dict = field(default_factory=dict)            # {"AAPL": {"pct": "-5", "from": 1767225600}}
    frozen_at: int | None = None                          # quotes frozen at this second (a feed that stopped)
    cancel_refusals: int = 0                              # the next N cancels are refused


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
                          latency_ms=int(raw.get("latency_ms", 0)), shocks=dict(raw.get("shocks", {})),
                          latency_exits_only=bool(raw.get("latency_exits_only")),
                          cancel_refusals=int(raw.get("cancel_refusals", 0)), frozen_at=raw.get("frozen_at"))

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

    def set_latency(self, milliseconds: int, *, exits_only: bool = False) -> None:
        """Every call to the venue waits ``milliseconds``; with ``exits_only`` only placing or resizing an exit
        leg does (a reduce-only stop or limit), so time to protection can be shown on a venue that trades at once."""
        with self._locked():
            state = self._read()
            state.latency_ms = max(0, milliseconds)
            state.latency_exits_only = exits_only
            self._write(state)

    def freeze_quotes(self, frozen: bool, *, at_second: int) -> None:
        """A feed that stopped: every quote stays the one of ``at_second`` (its timestamp too, so it ages) until
        unfrozen. Only what the desk is told stops: the venue's own prices walk on."""
        with self._locked():
            state = self._read()
            state.frozen_at = int(at_second) if frozen else None
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

    def refuse_cancels(self, count: int) -> None:
        """Refuse the next ``count`` cancels, as a real venue can (busy, or the order locked in matching)."""
        with self._locked():
            state = self._read()
            state.cancel_refusals = max(0, count)
            self._write(state)

    def take_cancel_refusal(self) -> bool:
        """Consume one pending cancel refusal: True when this cancel is to be refused."""
        if not self.path.exists():
            return False
        with self._locked():
            state = self._read()
            if state.cancel_refusals <= 0:
                return False
            state.cancel_refusals -= 1
            self._write(state)
            return True

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
