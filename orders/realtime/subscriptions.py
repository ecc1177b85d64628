"""Which frames a stream client wants: the protocol's startup filter (``SUBSCRIPTIONS``) plus,
beyond it, runtime ``subscribe`` / ``unsubscribe`` messages from the client.

A subscription is ``{platform, instrument, events}``; ``instrument`` may be ``*``. With no
subscription at all every frame passes. System frames (connection, data_staleness, error, ping)
always pass."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

SYSTEM_KINDS = frozenset({"connection", "data_staleness", "error", "ping", "rate_limit"})
_PATTERNS = {
    "quote": {"quote", "quotes", "*"},
    "order": {"order_update", "orders", "order", "*"},
    "position": {"position_update", "positions", "position", "*"},
    "trade": {"trade_update", "trades", "trade", "*"},
    "account": {"account_update", "account", "*"},
}


@dataclass(frozen=True)
class Subscription:
    platform: str
    instrument: str
    events: frozenset[str]


@dataclass
class SubscriptionFilter:
    platform: str
    subscriptions: list[Subscription] = field(default_factory=list)
    default_market: frozenset[str] = frozenset()     # quotes/candles while nothing is subscribed

    @classmethod
    def from_config(cls, raw: str, *, platform: str, default_market: str = "") -> SubscriptionFilter:
        items = json.loads(raw) if raw.strip() else []
        if not isinstance(items, list):
            raise ValueError("SUBSCRIPTIONS must be a JSON array")
        subs = [Subscription(str(i.get("platform", platform)), str(i.get("instrument", "*")),
                             frozenset(str(e) for e in i.get("events", ["*"]) or ["*"])) for i in items]
        market = frozenset(s.strip() for s in default_market.split(",") if s.strip())
        return cls(platform=platform, subscriptions=subs, default_market=market)

    def add(self, symbols: list[str], events: list[str]) -> None:
        if not self.subscriptions:
            # no subscription meant "every frame, plus the default symbols' market data": a runtime
            # subscribe adds to that instead of silently filtering out the client's order events
            self.subscriptions = [Subscription(self.platform, "*", frozenset({"*"})), *(
                Subscription(self.platform, symbol, frozenset({"quote", "candle"}))
                for symbol in sorted(self.default_market))]
        for symbol in symbols or ["*"]:
            self.subscriptions.append(Subscription(self.platform, symbol, frozenset(events or ["*"])))

    def remove(self, symbols: list[str]) -> None:
        drop = set(symbols)
        self.subscriptions = [s for s in self.subscriptions if s.instrument not in drop]

    def symbols(self) -> set[str]:
        if not self.subscriptions:
            return set(self.default_market)
        return {s.instrument for s in self.subscriptions if s.instrument != "*" and s.platform == self.platform}

    def wants_market_data(self, symbol: str, kind: str) -> bool:
        """Quotes and candles flow for symbols named in a subscription (or the defaults while there is none)."""
        if not self.subscriptions:
            return symbol in self.default_market
        return any(s.platform == self.platform and s.instrument == symbol and _matches(kind, s.events)
                   for s in self.subscriptions)

    def passes(self, kind: str, symbol: str | None) -> bool:
        if kind in SYSTEM_KINDS or not self.subscriptions:
            return True
        for sub in self.subscriptions:
            if sub.platform != self.platform:
                continue
            if kind == "account":
                if _matches(kind, sub.events):
                    return True
                continue
            if sub.instrument in ("*", symbol) and _matches(kind, sub.events):
                return True
        return False


def _matches(kind: str, events: frozenset[str]) -> bool:
    if kind == "candle":
        return any(e == "*" or e in ("bar", "bars") or e.startswith("candle") for e in events)
    return bool(events & _PATTERNS.get(kind, {"*"}))
