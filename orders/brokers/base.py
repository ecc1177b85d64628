"""The one shape every broker adapter has.

=====================  ========  ===============================================================
method                 required  what it does
=====================  ========  ===============================================================
capabilities           yes       what the venue supports; drives the bracket strategy
instrument(symbol)     yes       tick/step/min for a symbol, or raise SymbolNotFound
symbols()              no        the symbols a ticket may offer (default: none listed; any may be typed)
check_order(...)       yes       the venue's own pre-trade rules; raise OrderRejected
submit_order(ticket)   yes       send an order; return a BrokerAck or raise a DeskError
cancel_order(ticket)   yes       cancel a working order at the venue
lookup_order(ticket)   no        the order the venue holds under our id, if any (checked before a resend)
watch(wake, stop)      no        follow the venue's own event stream; call ``wake()`` on every event and
                                 reconnect, so the engine syncs at once instead of at its next tick
submit_bracket(...)    no        entry + SL + TP as one atomic unit (capability native_bracket)
submit_oco(tickets)    no        orders the venue links one-cancels-other (capability native_oco)
modify_order(...)      no        change price/quantity in place (default: UnsupportedOperation)
quote(symbol)          yes       the latest top of book
bars(...)              yes       OHLCV history
status()               yes       connection status (connected, latency, heartbeat)
sync(working, now)     yes       bring working orders up to date: the paper venue matches them,
                                 a real broker reports fills and cancels it has seen, and a held
                                 bracket leg the venue released (ACCEPTED)
account_state(now)     yes       the venue's account figures (``VenueAccount``)
positions(now)         yes       what the venue holds (``VenuePosition``), external positions included
open_orders(now)       yes       the venue's working orders (``VenueOrder``), external ones included
arm_deadman(seconds)   no        (re-)arm the venue's dead man's switch: cancel every order unless armed again
                                 within ``seconds``; 0 disarms (capability: ``deadman_seconds`` > 0)
poll_seconds           no        the least time between two polls of the venue (``sync`` and the
                                 trailing stops' quotes) that no stream event asked for; 0 = every tick
=====================  ========  ===============================================================

Adapters speak only the dataclasses of ``brokers.types`` and raise the errors of
``domain.errors``; they never import Django models and get their configuration
through the constructor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from orders.brokers.types import (
    AccountContext,
    Bar,
    BracketStrategy,
    BrokerAck,
    Capabilities,
    ConnectionStatus,
    ExecutionReport,
    Instrument,
    OrderTicket,
    Quote,
    VenueAccount,
    VenueOrder,
    VenuePosition,
    WorkingOrder,
)
from orders.domain.errors import Unsupported
from orders.domain.orders import OrderRequest


class Broker:
    name = "base"
    capabilities: Capabilities
    # How this broker submits, said once. A venue that answers at once (in process: the paper venue) is sent an
    # order inside the transaction that records it, matches a closing order straight away, never leaves an order
    # PENDING for reconciliation, is cheap to ask for quotes on the event loop's thread, and leaves bracket legs
    # for the desk to hold and release. A remote venue is sent an order after it is recorded (an unknown outcome
    # is reconciled by client id), holds its own bracket legs, and is asked for market data on a worker thread.
    answers_at_once = False
    # shown to people as a simulated venue (no real money)
    simulated = False
    # the venue's own account, positions and orders are the truth (a real broker): the desk shows and checks
    # against ``account_state``, adopts positions and orders found only at the venue, and raises
    # POSITION_MISMATCH when its ledger drifts from ``positions``. False: the desk's ledger *is* the venue's
    # (the paper venue keeps its books in the desk's database)
    venue_ledger = True
    # one balance backs only one resting reducing order (spot venues without a linked OCO for the pair): a
    # bracket's stop rests at the venue and its take-profit is watched by the engine and fired on the quote
    one_resting_exit = False
    # the venue's dead man's switch, re-armed by the engine that holds the account's lease; 0 = none
    deadman_seconds = 0
    # a remote venue is polled no more often than this, so the engine's ticks stay within its request budget;
    # an event on the venue's stream (``watch``) asks for a poll at once
    poll_seconds = 0.0

    def symbols(self) -> list[str]:
        """The symbols the desk's ticket offers. Default: the venue does not list them."""
        return []

    def instrument(self, symbol: str) -> Instrument:
        raise NotImplementedError("a broker must describe its instruments")

    def check_order(self, request: OrderRequest, *, context: AccountContext, now: datetime) -> Decimal:
        """Apply the venue's pre-trade rules. Returns the reference price the order was checked at."""
        raise NotImplementedError("a broker must check orders before they are recorded")

    def submit_order(self, ticket: OrderTicket) -> BrokerAck:
        raise NotImplementedError("a broker must accept orders")

    def cancel_order(self, ticket: OrderTicket) -> None:
        raise NotImplementedError("a broker must cancel orders")

    def lookup_order(self, ticket: OrderTicket) -> BrokerAck | None:
        """The venue's acknowledgement of an order sent earlier under ``ticket.order_id``, or None when the
        venue has none. Called before (re)sending exit legs, so an engine that died between sending and
        recording never places a leg twice. Default: the venue cannot tell (None)."""
        return None

    def watch(self, *, wake: Callable[[], None], stop: threading.Event) -> None:
        """Follow the venue's event stream until ``stop`` is set (runs in a thread of the engine). The
        engine's ``sync`` stays the one place that applies what happened, so a stream event that
        arrives twice, late or never changes nothing but how soon a fill is seen. Default: no stream."""
        return None

    def bracket_strategy_for(self, request: OrderRequest) -> BracketStrategy:
        """How this broker protects this particular entry (a broker may bracket stocks natively but not
        crypto, say). Default: what the capabilities say for every order."""
        return self.capabilities.bracket_strategy

    def submit_bracket(self, entry: OrderTicket, legs: Sequence[OrderTicket]) -> list[BrokerAck]:
        raise Unsupported("bracket orders", self.name)

    def submit_oco(self, tickets: Sequence[OrderTicket]) -> list[BrokerAck]:
        raise Unsupported("OCO orders", self.name)

    def modify_order(self, ticket: OrderTicket, *, quantity: Decimal | None = None,
                     limit_price: Decimal | None = None, stop_price: Decimal | None = None,
                     trailing_distance: Decimal | None = None) -> BrokerAck:
        raise Unsupported("modify_order", self.name)

    def quote(self, symbol: str, *, now: datetime) -> Quote:
        raise NotImplementedError("a broker must provide quotes")

    def bars(self, symbol: str, *, timeframe: str, seconds: int, end: datetime, count: int) -> list[Bar]:
        raise NotImplementedError("a broker must provide bars")

    def status(self, *, now: datetime) -> ConnectionStatus:
        raise NotImplementedError("a broker must report its connection status")

    def sync(self, working: Sequence[WorkingOrder], *, now: datetime) -> list[ExecutionReport]:
        raise NotImplementedError("a broker must report what happened to working orders")

    def account_state(self, *, now: datetime, account_id: int | None = None) -> VenueAccount:
        """The account's figures as the venue reports them. ``account_id`` (the desk's account) matters only
        to the paper venue, whose books are the desk's; a real broker has one account per set of keys."""
        raise NotImplementedError("a broker must report the venue's account")

    def positions(self, *, now: datetime, account_id: int | None = None) -> list[VenuePosition]:
        """Every position the venue holds for the account, non-zero only, including any opened elsewhere."""
        raise NotImplementedError("a broker must report the venue's positions")

    def open_orders(self, *, now: datetime, account_id: int | None = None) -> list[VenueOrder]:
        """Every working order the venue holds for the account, including any placed elsewhere."""
        raise NotImplementedError("a broker must report the venue's working orders")

    def arm_deadman(self, *, seconds: int) -> None:
        """Ask the venue to cancel every order unless armed again within ``seconds``; 0 disarms.
        Only brokers with ``deadman_seconds`` > 0 are asked."""
        raise Unsupported("a dead man's switch", self.name)
