"""The exits the engine watches on the quote, on each polling tick:

* **trailing stops** the venue cannot trail itself (or not with a fixed floor): a stop order rests at the venue
  and the engine moves it as the best price since entry moves (``trail_tick``);
* **take-profits** on a venue where one balance backs only one resting reducing order (``one_resting_exit``:
  Kraken Spot, Binance without an OCO): the stop rests, and when the quote reaches the take-profit the engine
  cancels the stop and sells what is held at the market (``take_profit_watch``).

How much a leg covers and how a refused leg is retried are ``services/protection.py``'s; the numbers
(``trailing_move``, ``take_profit_touched``) are ``exits/decide.py``'s.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from orders.brokers.base import Broker
from orders.domain.enums import WORKING_STATUSES, OrderStatus, Side, TrailingType
from orders.domain.errors import DeskError
from orders.domain.lifecycle import LIVE_LEG, LegStatus, OrderStep
from orders.domain.money import format_decimal
from orders.exits.book import TrailingBook, TrailingLeg
from orders.exits.decide import take_profit_touched, trailing_move
from orders.models import Account, ExitLeg, Order
from orders.services import legs
from orders.services.audit import audit_record
from orders.services.orders import OrderChanges, order_modify
from orders.services.protection import leg_target, protect
from orders.services.transitions import order_transition
from orders.venue import order_to_ticket

log = logging.getLogger(__name__)


def watched_tick(*, accounts: list[Account], broker: Broker, now: datetime, book: TrailingBook | None) -> None:
    """Trail the emulated stops (with the engine's ``book``) and fire the take-profits whose level is reached."""
    if book is not None:
        trail_tick(accounts=accounts, broker=broker, book=book, now=now)
    take_profit_watch(accounts=accounts, broker=broker, now=now)


# -- engine-watched take-profits -------------------------------------------------------------------------

def take_profit_watch(*, accounts: list[Account], broker: Broker, now: datetime) -> None:
    """Fire every armed engine-watched take-profit whose level the quote has reached (``exits.strategy.leg_plans``
    arms them on a venue where the stop holds the whole balance)."""
    quotes: dict[str, object] = {}
    armed = ExitLeg.objects.filter(account__in=accounts, emulated=True, role=Order.LegRole.TAKE_PROFIT,
                                   status=LegStatus.PLACED).select_related("entry")
    for leg in armed:
        if Order.objects.filter(exit_leg=leg, status__in=WORKING_STATUSES).exists():
            continue                      # fired already: its sell is working
        if leg.symbol not in quotes:
            try:
                quotes[leg.symbol] = broker.quote(leg.symbol, now=now)
            except DeskError as e:
                log.warning("take-profit %s not checked: no quote for %s: %s", leg.pk, leg.symbol, e.message)
                quotes[leg.symbol] = None
        quote = quotes[leg.symbol]
        if quote is not None and take_profit_touched(side=Side(leg.side), trigger=leg.trigger_price,
                                                     bid=quote.bid, ask=quote.ask):
            _fire_take_profit(leg, broker=broker, now=now)


def _fire_take_profit(leg: ExitLeg, *, broker: Broker, now: datetime) -> None:
    """The quote reached the take-profit: cancel the resting stop first (its balance is what the sale needs),
    then sell what is held at the market. The stop's leg ends only when the sale fills (as a sibling's does); a
    sale the venue refuses now, or ends later without filling, puts the stop back (``protection.protect``) and
    arms the take-profit again after a backoff. A stop the venue would not cancel keeps the position protected
    and the take-profit waits for the next tick."""
    entry = Order.objects.get(pk=leg.entry_id)
    quantity = leg_target(entry, broker)
    if quantity <= 0:
        return
    stops = ExitLeg.objects.filter(entry=entry, role=Order.LegRole.STOP_LOSS, status__in=LIVE_LEG)
    cancelled = 0
    for order in Order.objects.filter(exit_leg__in=stops, status__in=WORKING_STATUSES):
        try:
            if legs.is_at_broker(order, broker):
                broker.cancel_order(order_to_ticket(order))
        except DeskError as e:
            log.warning("take-profit %s waits: the stop %s was not cancelled: %s", leg.pk, order.id, e.message)
            if cancelled:
                protect(entry=entry, broker=broker, now=now)    # what was cancelled already is placed again
            return
        order_transition(order, OrderStatus.CANCELLED, step=OrderStep.ENDED,
                         message="cancelled for the take-profit's sale")
        cancelled += 1
    try:
        with transaction.atomic():
            legs.leg_place(entry, leg, quantity, broker=broker)
    except DeskError as e:
        log.error("take-profit %s: the sale was refused (%s); the stop goes back", leg.pk, e.message)
        legs.leg_placement_failed(leg, entry, f"take-profit sale refused: {e.message}", now=now)
        protect(entry=entry, broker=broker, now=now)        # the stop has no working order: it is placed again
        return
    audit_record(account_id=entry.account_id, actor="engine", action="take_profit.fire", target=str(leg.pk),
                 symbol=entry.symbol, quantity=format_decimal(quantity), trigger=format_decimal(leg.trigger_price))


# -- emulated trailing stops ---------------------------------------------------------------------------

def trail_book_load(*, accounts: list[Account]) -> TrailingBook:
    book = TrailingBook()
    for leg in ExitLeg.objects.filter(account__in=accounts, emulated=True, status=LegStatus.PLACED):
        _book_add(book, leg)
    return book


def _book_add(book: TrailingBook, leg: ExitLeg) -> None:
    order = Order.objects.filter(exit_leg=leg, status__in=WORKING_STATUSES).first()
    if order is None or leg.trailing_distance is None:
        return
    peak = leg.trail_peak or leg.entry.average_fill_price or order.stop_price
    book.add(TrailingLeg(str(leg.pk), leg.symbol, Side(leg.side), leg.trailing_distance,
                         TrailingType(leg.trailing_type), peak))


def trail_tick(*, accounts: list[Account], broker: Broker, book: TrailingBook, now: datetime) -> None:
    """Follow the market with every emulated trailing stop; move the resting stop order when its level
    has moved by at least ``TRAIL_MOVE_THRESHOLD``."""
    known = book.leg_ids()
    for leg in ExitLeg.objects.filter(account__in=accounts, emulated=True, status=LegStatus.PLACED):
        if str(leg.pk) not in known:
            _book_add(book, leg)
    for symbol in book.symbols():
        try:
            quote = broker.quote(symbol, now=now)
        except DeskError:
            continue
        _, moved = book.on_quote(symbol, bid=quote.bid, ask=quote.ask)
        if moved:
            for trailing in book.legs_of(symbol):
                _move_trailing_stop(trailing, broker=broker)
    live = {str(pk) for pk in ExitLeg.objects.filter(pk__in=list(book.leg_ids()), status=LegStatus.PLACED)
            .values_list("pk", flat=True)}
    for leg_id in book.leg_ids() - live:
        book.remove(leg_id)


def _move_trailing_stop(trailing: TrailingLeg, *, broker: Broker) -> None:
    leg = ExitLeg.objects.filter(pk=trailing.leg_id, status=LegStatus.PLACED).select_related("account").first()
    if leg is None:
        return
    level = trailing.level()
    ExitLeg.objects.filter(pk=leg.pk).update(trail_peak=trailing.peak)
    tick = broker.instrument(leg.symbol).tick_size
    for order in Order.objects.filter(exit_leg=leg, status__in=WORKING_STATUSES):
        stop = trailing_move(level=level, side=Side(leg.side), floor=leg.trigger_price, tick=tick,
                             current_stop=order.stop_price)
        if stop is None:
            continue
        try:
            order_modify(account=leg.account, order_id=str(order.id), changes=OrderChanges(stop_price=stop),
                         broker=broker, actor="engine:trailing")
        except DeskError as e:
            log.warning("trailing stop %s not moved: %s", order.id, e.message)
