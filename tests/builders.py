"""Plain functions that build test objects with sensible defaults."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.orders import OrderRequest
from orders.engine import engine_tick
from orders.models import Account
from orders.services.approvals import approval_approve, trading_state_ask


def make_account(*, name: str = "alice", cash: Decimal = Decimal("100000"), broker: str = "paper",
                 is_default: bool = False) -> Account:
    return Account.objects.create(name=name, cash=cash, broker=broker, is_default=is_default)


def make_order_request(**overrides) -> OrderRequest:
    fields = {"symbol": "AAPL", "side": Side.BUY, "quantity": Decimal("10"), "order_type": OrderType.MARKET,
              "time_in_force": TimeInForce.GTC}
    fields.update(overrides)
    for key, enum in (("side", Side), ("order_type", OrderType), ("time_in_force", TimeInForce)):
        if isinstance(fields.get(key), str):
            fields[key] = enum(fields[key])
    for key in ("quantity", "limit_price", "stop_price", "stop_loss", "take_profit", "trailing_distance",
                "display_quantity"):
        if isinstance(fields.get(key), str | int):
            fields[key] = Decimal(str(fields[key]))
    return OrderRequest(**fields)


def run_engine(account: Account, broker, *, seconds: int = 0, clock=None):
    """Let the engine match: optionally move the frozen clock forward first, then tick once."""
    if clock is not None and seconds:
        clock.shift(seconds)
    return engine_tick(accounts=[account], broker=broker, now=timezone.now())


def resume_approved(account: Account, *, reason: str, state: str = "ACTIVE", asked_by: str = "user:tom",
                    approved_by: str = "user:rita") -> Account:
    """Let a HALTED account trade again the four-eyes way: one person asks, a second one with the risk role
    approves (``services/approvals.py``)."""
    asked = trading_state_ask(account=account, state=state, actor=asked_by, reason=reason)
    approval_approve(account=account, approval_id=str(asked.pk), actor=approved_by, supervisor=True)
    account.refresh_from_db()
    return account
