"""Account figures and the pre-trade context brokers check orders against."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import F, Sum

from orders.brokers.base import Broker
from orders.brokers.types import AccountContext
from orders.domain.account import AccountFigures, Holding, account_figures
from orders.domain.enums import WORKING_STATUSES, Side
from orders.domain.errors import DeskError
from orders.domain.money import ZERO
from orders.domain.positions import exposure_increase
from orders.models import Account, Order, Position


def mark_price(broker: Broker, symbol: str, *, now: datetime, fallback: Decimal) -> Decimal:
    try:
        return broker.quote(symbol, now=now).last
    except DeskError:
        return fallback


def account_snapshot(*, account: Account, broker: Broker, now: datetime,
                     positions: list[Position] | None = None) -> AccountFigures:
    if positions is None:
        positions = list(Position.objects.filter(account=account).exclude(quantity=0))
        account.cash = Account.objects.values_list("cash", flat=True).get(pk=account.pk)   # never a stale balance
    # buying power held by working orders, summed per symbol and side in the database
    working = (Order.objects.filter(account=account, status__in=WORKING_STATUSES, reduce_only=False)
               .values("symbol", "side")
               .annotate(remaining=Sum(F("quantity") - F("filled_quantity")),
                         value=Sum((F("quantity") - F("filled_quantity")) * F("reserved_price")))
               .values_list("symbol", "side", "remaining", "value"))
    return _figures(account, broker, positions, list(working), now=now)


def _figures(account: Account, broker: Broker, positions: list[Position], working: list[tuple],
             *, now: datetime) -> AccountFigures:
    held = {p.symbol: p.quantity for p in positions}
    holdings = []
    for p in positions:
        rate = _margin_rate(broker, p.symbol)
        mark = mark_price(broker, p.symbol, now=now, fallback=p.average_price)
        holdings.append(Holding(quantity=p.quantity, average_price=p.average_price, mark=mark, margin_rate=rate))
    reserved = ZERO
    for symbol, side, remaining, value in working:
        if not remaining:
            continue
        added = exposure_increase(held.get(symbol, ZERO), side=Side(side), quantity=remaining)
        reserved += value * (added / remaining) * _margin_rate(broker, symbol)
    return account_figures(cash=account.cash, holdings=holdings, reserved=reserved, currency=account.currency)


def _margin_rate(broker: Broker, symbol: str) -> Decimal:
    try:
        return broker.instrument(symbol).margin_rate
    except DeskError:
        return Decimal("1")


def account_context(*, account: Account, symbol: str, broker: Broker, now: datetime) -> AccountContext:
    positions = list(Position.objects.filter(account=account).exclude(quantity=0))
    figures = account_snapshot(account=account, broker=broker, now=now, positions=positions)
    held = next((p.quantity for p in positions if p.symbol == symbol), ZERO)
    return AccountContext(figures=figures, position_quantity=held)
