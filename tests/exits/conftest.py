"""Helpers for the exit-management tests: switch the paper venue's capability profile, read the live
quote, submit entries with stop-loss / take-profit through /v1, move the market with shocks and look at
the orders that carry each leg."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from orders.brokers import get_broker, reset_broker_cache
from orders.brokers.paper_market import seconds_since_epoch
from orders.models import Account, ExitLeg, Order
from tests.builders import run_engine

J = "application/json"
PROFILES = ("none", "native_oco", "native_bracket")
STRATEGY_OF = {"none": "pending", "native_oco": "native_oco", "native_bracket": "native_bracket"}
RICH = Decimal("10000000")


@pytest.fixture
def account(db) -> Account:
    """The default (keyless) account, rich enough to buy or short a few thousand AAPL."""
    return Account.objects.create(name="alice", cash=RICH, is_default=True)


def use_profile(settings, profile: str):
    """Switch the paper venue's capability profile and return the freshly built broker."""
    settings.PAPER_CAPABILITY_PROFILE = profile
    reset_broker_cache()
    return get_broker()


@pytest.fixture(params=PROFILES)
def profile(request, settings, account):
    """Each test using it runs once per capability profile; yields (profile name, broker)."""
    return request.param, use_profile(settings, request.param)


def D(value) -> Decimal:
    return Decimal(str(value))


def quote(client, symbol: str = "AAPL") -> dict[str, Decimal]:
    """The live top of book as the API shows it."""
    response = client.get(f"/v1/quotes/{symbol}")
    assert response.status_code == 200, response.content
    body = response.json()
    return {k: D(body[k]) for k in ("bid", "ask", "last")}


def exits_around(client, side: str, *, gap: str = "2", symbol: str = "AAPL") -> tuple[Decimal, Decimal]:
    """A stop-loss and a take-profit ``gap`` away from the touch the entry fills at (far enough not
    to trigger by themselves over a few minutes)."""
    q = quote(client, symbol)
    if side == "BUY":
        return q["ask"] - D(gap), q["ask"] + D(gap)
    return q["bid"] + D(gap), q["bid"] - D(gap)


def submit(client, *, side: str = "BUY", quantity="10", order_type: str = "MARKET", expect: int = 201, **extra):
    body = {"symbol": "AAPL", "side": side, "quantity": str(quantity), "order_type": order_type}
    body.update({k: (str(v) if isinstance(v, Decimal | int) else v) for k, v in extra.items() if v is not None})
    response = client.post("/v1/orders", body, content_type=J)
    assert response.status_code == expect, response.content
    return response.json()


def submit_bracket(client, *, side: str = "BUY", quantity="10", sl=True, tp=True, gap: str = "2",
                   client_order_id: str | None = None, **extra) -> dict:
    stop_loss, take_profit = exits_around(client, side, gap=gap)
    return submit(client, side=side, quantity=quantity, client_order_id=client_order_id,
                  stop_loss=stop_loss if sl else None, take_profit=take_profit if tp else None, **extra)


def market_second() -> int:
    """The paper market's current second (what ``faults.shock`` counts from)."""
    return seconds_since_epoch(timezone.now())


def shock(broker, pct: str, *, after: int = 1, symbol: str = "AAPL") -> int:
    """Move the market by ``pct`` percent from ``after`` seconds from now on. Returns that second."""
    second = market_second() + after
    broker.faults.shock(symbol, pct, from_second=second)
    return second


def legs(entry_id) -> dict[str, list[Order]]:
    """The orders carrying each leg of an entry, oldest first, by role."""
    out: dict[str, list[Order]] = {"stop_loss": [], "take_profit": []}
    for order in Order.objects.filter(parent_id=entry_id, exit_leg__isnull=False).order_by("created_at"):
        out[order.leg_role].append(order)
    return out


def leg_states(entry_id) -> dict[str, str]:
    return {leg.role: leg.status for leg in ExitLeg.objects.filter(entry_id=entry_id)}


def exit_leg(entry_id, role: str) -> ExitLeg:
    return ExitLeg.objects.get(entry_id=entry_id, role=role)


def position_quantity(account, symbol: str = "AAPL") -> Decimal:
    from orders.models import Position

    return Position.objects.filter(account=account, symbol=symbol).values_list("quantity", flat=True).first() or 0


def tick(account, broker, clock, seconds: int = 1):
    return run_engine(account, broker, seconds=seconds, clock=clock)


def fill_entry(client, account, broker, clock, *, seconds: int = 1, **kwargs) -> dict:
    """Submit an entry with exits and let the engine fill it."""
    handle = submit_bracket(client, **kwargs)
    tick(account, broker, clock, seconds)
    return handle
