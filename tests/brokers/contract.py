"""One contract every broker adapter honours, written once and run against each broker.

A broker's test module subclasses ``BrokerContract`` and implements the ``stage_*`` hooks, which
arrange what the venue will answer (recorded payloads served by ``responses`` for real brokers,
market conditions for the paper venue). The tests then drive the adapter only through the
``Broker`` interface, so "one interface" is enforced rather than hoped for."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orders.brokers.base import Broker
from orders.brokers.types import (
    BrokerAck,
    ExecutionReport,
    OrderTicket,
    ReportKind,
    VenueAccount,
    VenueOrder,
    VenuePosition,
    WorkingOrder,
)
from orders.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from orders.domain.errors import DeskError, OrderRejected, ProviderUnavailable

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class BrokerContract:
    """Subclass, name it ``Test<Broker>Contract`` and implement the hooks."""

    symbol = "AAPL"
    quantity = Decimal("1")

    # -- hooks ---------------------------------------------------------------------------------------
    def make_broker(self) -> Broker:
        raise NotImplementedError

    def stage_quote(self, broker: Broker) -> None:
        """Arrange a quote for ``self.symbol``."""

    def limit_price(self, broker: Broker) -> Decimal:
        """A limit price the venue accepts and that does not fill at once."""
        raise NotImplementedError

    def stage_submit(self, broker: Broker, ticket: OrderTicket) -> None:
        """Arrange for the venue to accept ``ticket``."""

    def stage_rejection_for_funds(self, broker: Broker, ticket: OrderTicket) -> None:
        """Arrange for the venue to refuse ``ticket`` for lack of funds."""
        raise NotImplementedError

    def stage_cancel(self, broker: Broker, ticket: OrderTicket) -> None:
        """Arrange for the venue to cancel ``ticket``."""

    def stage_still_open(self, broker: Broker, order: WorkingOrder) -> None:
        """Arrange for the venue to report ``order`` as open and unfilled."""

    def stage_filled(self, broker: Broker, order: WorkingOrder, *, price: Decimal) -> WorkingOrder:
        """Arrange for the venue to report ``order`` completely filled at ``price``; return the order as the
        engine would hand it to ``sync`` (some venues need the order changed to fill, e.g. the paper one)."""
        raise NotImplementedError

    def stage_outage(self, broker: Broker) -> None:
        """Arrange for the venue to be unreachable or answer 503."""
        raise NotImplementedError

    def now(self) -> datetime:
        return NOW

    # -- helpers -------------------------------------------------------------------------------------
    def ticket(self, broker: Broker, **changes) -> OrderTicket:
        fields = {"order_id": "0b8e8f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "client_order_id": "contract-1",
                  "symbol": self.symbol, "side": Side.BUY, "order_type": OrderType.LIMIT, "quantity": self.quantity,
                  "time_in_force": TimeInForce.GTC, "limit_price": self.limit_price(broker)}
        fields.update(changes)
        return OrderTicket(**fields)

    def working(self, ticket: OrderTicket) -> WorkingOrder:
        return WorkingOrder(order_id=ticket.order_id, symbol=ticket.symbol, side=ticket.side,
                            order_type=ticket.order_type, quantity=ticket.quantity, filled_quantity=Decimal("0"),
                            time_in_force=ticket.time_in_force, created_at=self.now(), limit_price=ticket.limit_price)

    # -- the contract --------------------------------------------------------------------------------
    def test_it_describes_what_it_supports(self):
        broker = self.make_broker()
        caps = broker.capabilities
        assert caps.supported_order_types and caps.supported_asset_classes
        assert caps.platform == broker.name
        assert ("bracket_orders" in caps.features) == (caps.bracket_strategy.value == "native_bracket")

    def test_it_quotes_with_decimal_prices_and_bid_below_ask(self):
        broker = self.make_broker()
        self.stage_quote(broker)
        quote = broker.quote(self.symbol, now=self.now())
        assert isinstance(quote.bid, Decimal) and isinstance(quote.ask, Decimal)
        assert Decimal(0) < quote.bid <= quote.ask
        assert quote.timestamp.tzinfo is not None

    def test_it_accepts_a_limit_order_and_acknowledges_it(self):
        broker = self.make_broker()
        ticket = self.ticket(broker)
        self.stage_submit(broker, ticket)
        ack = broker.submit_order(ticket)
        assert isinstance(ack, BrokerAck)
        assert ack.broker_order_id
        assert ack.status in (OrderStatus.PENDING, OrderStatus.OPEN)

    def test_a_refusal_for_funds_is_an_order_rejected_with_a_reason(self):
        broker = self.make_broker()
        ticket = self.ticket(broker)
        self.stage_rejection_for_funds(broker, ticket)
        with pytest.raises(OrderRejected) as raised:
            broker.submit_order(ticket)
        assert raised.value.status == 422
        assert raised.value.reason in ("INSUFFICIENT_BALANCE", "INSUFFICIENT_MARGIN")

    def test_it_cancels_a_working_order(self):
        broker = self.make_broker()
        ticket = self.ticket(broker)
        self.stage_cancel(broker, ticket)
        broker.cancel_order(ticket)

    def test_an_open_order_produces_no_fill_report(self):
        broker = self.make_broker()
        order = self.working(self.ticket(broker))
        self.stage_still_open(broker, order)
        reports = broker.sync([order], now=self.now())
        assert not [r for r in reports if r.kind is ReportKind.FILL]

    def test_a_fill_is_reported_once_with_its_quantity_and_price(self):
        broker = self.make_broker()
        order = self.working(self.ticket(broker))
        price = self.limit_price(broker)
        order = self.stage_filled(broker, order, price=price)
        reports = [r for r in broker.sync([order], now=self.now()) if r.kind is ReportKind.FILL]
        assert reports, "a filled order must be reported"
        assert all(isinstance(r, ExecutionReport) and r.fill_id for r in reports)
        assert sum(r.quantity for r in reports) == order.quantity
        assert len({r.fill_id for r in reports}) == len(reports)
        assert all(r.price > 0 for r in reports)

    def test_an_outage_is_provider_unavailable_never_a_crash(self):
        broker = self.make_broker()
        self.stage_outage(broker)
        with pytest.raises(DeskError) as raised:
            broker.quote(self.symbol, now=self.now())
        assert isinstance(raised.value, ProviderUnavailable) or raised.value.status in (502, 503)


class VenueBooksContract:
    """Mixed into the contract of a broker whose venue keeps the books (``venue_ledger``): its account, positions
    and working orders, read through the ``Broker`` interface alone (issue #13)."""

    working_statuses: tuple[OrderStatus, ...] = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)

    # -- hooks ---------------------------------------------------------------------------------------
    def stage_account(self) -> None:
        """What the venue answers for the account and what it holds."""
        raise NotImplementedError

    def stage_open_orders(self) -> None:
        raise NotImplementedError

    def check_figures(self, figures: VenueAccount) -> None:
        """The venue's own arithmetic between its figures."""
        raise NotImplementedError

    # -- the contract --------------------------------------------------------------------------------
    def test_the_account_is_the_venues_in_decimals(self):
        broker = self.make_broker()
        self.stage_account()
        figures = broker.account_state(now=self.now())
        assert isinstance(figures, VenueAccount) and broker.venue_ledger
        assert all(isinstance(getattr(figures, name), Decimal) for name in (
            "cash", "equity", "buying_power", "margin_used", "margin_available"))
        self.check_figures(figures)

    def test_positions_and_working_orders_are_the_interfaces_types(self):
        broker = self.make_broker()
        self.stage_account()
        self.stage_open_orders()
        held = broker.positions(now=self.now())
        assert held and all(isinstance(p, VenuePosition) and p.quantity != 0 for p in held)
        working = broker.open_orders(now=self.now())
        assert working and all(isinstance(o, VenueOrder) and o.status in self.working_statuses for o in working)
