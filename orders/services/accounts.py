"""Account figures and the pre-trade context brokers check orders against."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from orders import events
from orders.brokers.base import Broker
from orders.brokers.types import AccountContext, VenueAccount
from orders.domain.account import AccountFigures, Holding, account_figures
from orders.domain.enums import Side
from orders.domain.errors import DeskError, ProviderUnavailable
from orders.domain.money import ZERO
from orders.domain.positions import exposure_increase
from orders.models import Account, Position, VenueState
from orders.services.exposure import Exposure, exposure_current, exposure_read


def mark_price(broker: Broker, symbol: str, *, now: datetime, fallback: Decimal) -> Decimal:
    try:
        return broker.quote(symbol, now=now).last
    except DeskError:
        return fallback


def account_snapshot(*, account: Account, broker: Broker, now: datetime, strict: bool = False) -> AccountFigures:
    """The account's figures: a real venue's own (``venue_figures``), else the desk's ledger as the database holds
    it now (cash, positions, working orders). ``account`` itself is left alone: it may be the API key cache's,
    shared between threads. A position without a quote is marked at its average price, unless ``strict``: then
    the figures cannot be had (``DeskError``), for what acts on them (the loss guard) rather than shows them."""
    if broker.venue_ledger:
        return venue_figures(account=account, broker=broker, now=now)
    fresh = copy.copy(account)
    fresh.cash = Account.objects.values_list("cash", flat=True).get(pk=account.pk)   # never a stale balance
    return _figures(fresh, broker, exposure_read(account.pk), now=now, strict=strict)


def account_context(*, account: Account, symbol: str, broker: Broker, now: datetime,
                    book: Exposure | None = None, side: Side | None = None,
                    quantity: Decimal | None = None) -> AccountContext:
    """What a broker checks a new ``symbol`` order against. ``account`` must carry the cash just read
    under its row lock; ``book`` is the account's current exposure when the caller already has it. For a real
    venue the figures are the venue's (its buying power already counts its working orders). An order that only
    reduces a position (``side`` and ``quantity`` say so) needs no buying power: while the venue's account
    cannot be read it is checked against none, so a close, a flatten or the kill switch still goes out."""
    book = book or exposure_current(account.pk)
    held = book.position_quantity(symbol)
    if not broker.venue_ledger:
        return AccountContext(figures=_figures(account, broker, book, now=now), position_quantity=held)
    try:
        figures = venue_figures(account=account, broker=broker, now=now)
    except ProviderUnavailable:
        if side is None or quantity is None or exposure_increase(held, side=side, quantity=quantity) > 0:
            raise
        figures = account_figures(cash=ZERO, holdings=[], currency=account.currency)
    return AccountContext(figures=figures, position_quantity=held)


def _figures(account: Account, broker: Broker, book: Exposure, *, now: datetime,
             strict: bool = False) -> AccountFigures:
    holdings = []
    for symbol, (quantity, average_price) in book.positions.items():
        mark = (broker.quote(symbol, now=now).last if strict
                else mark_price(broker, symbol, now=now, fallback=average_price))
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


_VENUE_FIGURES = ("cash", "equity", "buying_power", "margin_used", "margin_available", "unrealized_pnl",
                  "currency")


# -- a real venue's figures (see services/reconcile.py) ------------------------------------------------

def venue_figures(*, account: Account, broker: Broker, now: datetime) -> AccountFigures:
    """The account's figures as the venue last reported them: read from the venue when what is stored is older
    than ``DESK_VENUE_MAX_AGE_SECONDS``. Fails closed: without figures from the venue, ``ProviderUnavailable``
    (the desk never shows or checks against a number the venue never had)."""
    state = VenueState.objects.filter(account_id=account.pk).first()
    if state is None or state.read_at is None or now - state.read_at > max_venue_age():
        try:
            state = _read_figures(account=account, broker=broker, now=now)
        except DeskError as e:
            if state is None or state.read_at is None:
                raise ProviderUnavailable(f"the {broker.name} account could not be read: {e.message}") from e
            if now - state.read_at > max_venue_age() * 10:
                raise ProviderUnavailable(
                    f"the {broker.name} account could not be read ({e.message}); the last figures are from "
                    f"{state.read_at.isoformat()}") from e
    return _as_figures(state)


def _as_figures(state: VenueState) -> AccountFigures:
    unrealized = state.unrealized_pnl if state.unrealized_pnl is not None else _unrealized(state)
    return AccountFigures(balance=state.cash, equity=state.equity, margin_used=state.margin_used,
                          margin_available=state.margin_available, unrealized_pnl=unrealized, reserved=ZERO,
                          currency=state.currency, venue_buying_power=state.buying_power)


def _unrealized(state: VenueState) -> Decimal:
    """A venue that keeps no average price (spot) reports no unrealised P&L: it is the desk's positions (their
    average prices are the desk's) against the marks the venue gave with its holdings at the last read."""
    total = ZERO
    for symbol, quantity, average in Position.objects.filter(account_id=state.account_id).exclude(
            quantity=0).values_list("symbol", "quantity", "average_price"):
        mark = (state.holdings.get(symbol) or {}).get("mark")
        if mark is not None and average:
            total += (Decimal(mark) - average) * quantity
    return total


def max_venue_age() -> timedelta:
    """How old the venue's figures and holdings may be before they are read again."""
    return timedelta(seconds=settings.DESK_VENUE_MAX_AGE_SECONDS)


def _read_figures(*, account: Account, broker: Broker, now: datetime) -> VenueState:
    figures = broker.account_state(now=now, account_id=account.pk)
    with transaction.atomic():
        state = venue_state_locked(account)
        venue_store_figures(state, figures, now=now)
        return state


def venue_state_locked(account: Account) -> VenueState:
    VenueState.objects.get_or_create(account_id=account.pk)
    return VenueState.objects.select_for_update().get(account_id=account.pk)


def venue_store_figures(state: VenueState, figures: VenueAccount, *, now: datetime) -> bool:
    """Store what the venue said; push the account's figures when they changed. True when they did."""
    before = tuple(getattr(state, name) for name in _VENUE_FIGURES)
    for name in _VENUE_FIGURES:
        setattr(state, name, getattr(figures, name))
    state.read_at, state.read_error = now, ""
    state.save()
    after = tuple(getattr(state, name) for name in _VENUE_FIGURES)
    if before != after:
        events.record_account(state.account_id, _as_figures(state))
        return True
    return False
