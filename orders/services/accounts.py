"""Account figures and the pre-trade context brokers check orders against."""

from __future__ import annotations

import copy
from datetime import datetime
from decimal import Decimal

from orders.brokers.base import Broker
from orders.brokers.types import AccountContext
from orders.domain.account import AccountFigures, Holding, account_figures
from orders.domain.enums import Side
from orders.domain.errors import DeskError
from orders.domain.money import ZERO
from orders.domain.positions import exposure_increase
from orders.models import Account
from orders.services.exposure import Exposure, exposure_current, exposure_read


def mark_price(broker: Broker, symbol: str, *, now: datetime, fallback: Decimal) -> Decimal:
    try:
        return broker.quote(symbol, now=now).last
    except DeskError:
        return fallback


def account_snapshot(*, account: Account, broker: Broker, now: datetime) -> AccountFigures:
    """The account's figures from what the database holds now (cash, positions, working orders).
    ``account`` itself is left alone: it may be the API key cache's, shared between threads."""
    fresh = copy.copy(account)
    fresh.cash = Account.objects.values_list("cash", flat=True).get(pk=account.pk)   # never a stale balance
    return _figures(fresh, broker, exposure_read(account.pk), now=now)


def account_context(*, account: Account, symbol: str, broker: Broker, now: datetime,
                    book: Exposure | None = None) -> AccountContext:
    """What a broker checks a new ``symbol`` order against. ``account`` must carry the cash just read
    under its row lock; ``book`` is the account's current exposure when the caller already has it."""
    book = book or exposure_current(account.pk)
    return AccountContext(figures=_figures(account, broker, book, now=now),
                          position_quantity=book.position_quantity(symbol))


def _figures(account: Account, broker: Broker, book: Exposure, *, now: datetime) -> AccountFigures:
    holdings = []
    for symbol, (quantity, average_price) in book.positions.items():
        mark = mark_price(broker, symbol, now=now, fallback=average_price)
        holdings.append(Holding(quantity=quantity, average_price=average_price, mark=mark,
                                margin_rate=_margin_rate(broker, symbol)))
    reserved = ZERO
    for (symbol, side), (remaining, value) in book.working.items():
        added = exposure_increase(book.position_quantity(symbol), side=Side(side), quantity=remaining)
        reserved += value * (added / remaining) * _margin_rate(broker, symbol)
    return account_figures(cash=account.cash, holdings=holdings, reserved=reserved, currency=account.currency)


def _margin_rate(broker: Broker, symbol: str) -> Decimal:
    try:
        return broker.instrument(symbol).margin_rate
    except DeskError:
        return Decimal("1")
