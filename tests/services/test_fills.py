"""services.fills: what the venue reports moves order, position and cash together, once per fill."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orders.brokers.types import ExecutionReport, ReportKind
from orders.domain.enums import Side
from orders.models import Account, Event, Fill, Order, Position
from orders.services.fills import report_apply
from orders.services.orders import order_submit
from tests.builders import make_account, make_order_request, run_engine

pytestmark = pytest.mark.django_db

D = Decimal
AT = datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC)


def place(account, broker, **fields) -> Order:
    return order_submit(account=account, request=make_order_request(**fields), broker=broker).order


def fill(order: Order, broker, *, quantity, price, fill_id: str | None = None, commission="0") -> bool:
    report = ExecutionReport(str(order.id), ReportKind.FILL, AT, fill_id=fill_id or f"{order.id}:{quantity}@{price}",
                             quantity=D(str(quantity)), price=D(str(price)), commission=D(str(commission)))
    return report_apply(report=report, broker=broker)


def cash(account) -> Decimal:
    return Account.objects.get(pk=account.pk).cash


def position(account, symbol: str = "AAPL") -> Position:
    return Position.objects.get(account=account, symbol=symbol)


# -- cash -------------------------------------------------------------------------------------------------------

def test_a_buy_fill_pays_notional_and_commission_from_cash(account, broker, clock):
    order = place(account, broker, quantity=10)
    assert fill(order, broker, quantity=10, price="150", commission="1.25")
    assert cash(account) == D("100000") - D("1500") - D("1.25")


def test_a_sell_fill_adds_the_proceeds_less_commission(account, broker, clock):
    order = place(account, broker, side=Side.SELL, quantity=10)
    assert fill(order, broker, quantity=10, price="150", commission="1.25")
    assert cash(account) == D("100000") + D("1500") - D("1.25")


def test_a_real_venue_fill_moves_cash_by_the_recorded_fills(account, broker, clock):
    order = place(account, broker, quantity=10)
    run_engine(account, broker, seconds=1, clock=clock)
    fills = list(Fill.objects.filter(order=order))
    assert sum(f.quantity for f in fills) == 10
    assert cash(account) == D("100000") - sum(f.quantity * f.price + f.commission for f in fills)


# -- netting ----------------------------------------------------------------------------------------------------

def test_buys_net_into_one_long_position_at_the_weighted_average(account, broker, clock):
    fill(place(account, broker, quantity=10), broker, quantity=10, price="100")
    fill(place(account, broker, quantity=30), broker, quantity=30, price="104")
    held = position(account)
    assert (held.quantity, held.average_price, held.realized_pnl) == (40, 103, 0)


def test_a_partial_close_realises_pnl_and_keeps_the_average(account, broker, clock):
    fill(place(account, broker, quantity=10), broker, quantity=10, price="100")
    fill(place(account, broker, side=Side.SELL, quantity=4), broker, quantity=4, price="110")
    held = position(account)
    assert (held.quantity, held.average_price, held.realized_pnl) == (6, 100, 40)


def test_selling_through_flat_opens_a_short_at_the_fill_price(account, broker, clock):
    fill(place(account, broker, quantity=10), broker, quantity=10, price="100")
    fill(place(account, broker, side=Side.SELL, quantity=14), broker, quantity=14, price="90")
    held = position(account)
    assert (held.quantity, held.average_price, held.realized_pnl) == (-4, 90, -100)


def test_a_position_closed_exactly_is_flat_and_announced_closed(account, broker, clock):
    fill(place(account, broker, quantity=10), broker, quantity=10, price="100")
    fill(place(account, broker, side=Side.SELL, quantity=10), broker, quantity=10, price="101")
    held = position(account)
    assert (held.quantity, held.realized_pnl) == (0, 10)
    events = [e.payload["event"] for e in Event.objects.filter(kind="position").order_by("id")]
    assert events == ["POSITION_OPENED", "POSITION_CLOSED"]


def test_positions_in_different_symbols_do_not_net(account, broker, clock):
    fill(place(account, broker, quantity=10), broker, quantity=10, price="100")
    fill(place(account, broker, symbol="MSFT", side=Side.SELL, quantity=2), broker, quantity=2, price="400")
    assert position(account).quantity == 10
    assert position(account, "MSFT").quantity == -2


# -- partial fills ------------------------------------------------------------------------------------------------

def test_partial_fills_average_the_fill_price_and_end_filled(account, broker, clock):
    order = place(account, broker, quantity=40)
    fill(order, broker, quantity=10, price="100")
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.average_fill_price) == ("PARTIALLY_FILLED", 10, 100)
    fill(order, broker, quantity=30, price="104")
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.average_fill_price) == ("FILLED", 40, 103)


def test_a_large_order_fills_in_parts_at_the_volume_weighted_price(db, broker, clock):
    whale = make_account(name="whale", cash=D("10000000"))
    order = place(whale, broker, quantity=3000)
    run_engine(whale, broker, clock=clock)
    order.refresh_from_db()
    assert order.status == "PARTIALLY_FILLED"
    assert 0 < order.filled_quantity < 3000
    for _ in range(5):
        run_engine(whale, broker, seconds=1, clock=clock)
    order.refresh_from_db()
    fills = list(Fill.objects.filter(order=order))
    assert len(fills) > 1
    assert order.status == "FILLED"
    assert sum(f.quantity for f in fills) == 3000
    volume_weighted = sum(f.quantity * f.price for f in fills) / 3000
    assert abs(order.average_fill_price - volume_weighted) < D("1E-9")


# -- idempotence and bounds ---------------------------------------------------------------------------------------

def test_a_fill_reported_twice_is_applied_once(account, broker, clock):
    order = place(account, broker, quantity=10)
    assert fill(order, broker, quantity=4, price="100", fill_id="venue-fill-1") is True
    assert fill(order, broker, quantity=4, price="100", fill_id="venue-fill-1") is False
    order.refresh_from_db()
    assert order.filled_quantity == 4
    assert Fill.objects.filter(order=order).count() == 1
    assert position(account).quantity == 4
    assert cash(account) == D("100000") - D("400")


def test_a_fill_beyond_the_order_quantity_is_ignored(account, broker, clock):
    order = place(account, broker, quantity=10)
    assert fill(order, broker, quantity=6, price="100", fill_id="a") is True
    assert fill(order, broker, quantity=6, price="100", fill_id="b") is False
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("PARTIALLY_FILLED", 6)
    assert position(account).quantity == 6
    assert cash(account) == D("100000") - D("600")


def test_a_fill_for_a_filled_order_is_ignored(account, broker, clock):
    order = place(account, broker, quantity=10)
    fill(order, broker, quantity=10, price="100", fill_id="a")
    assert fill(order, broker, quantity=1, price="100", fill_id="late") is False
    assert Fill.objects.filter(order=order).count() == 1


def test_each_applied_fill_is_announced_once(account, broker, clock):
    order = place(account, broker, quantity=10)
    fill(order, broker, quantity=10, price="100", fill_id="a")
    fill(order, broker, quantity=10, price="100", fill_id="a")
    assert Event.objects.filter(kind="trade").count() == 1
    assert [e.payload["event"] for e in Event.objects.filter(kind="order").order_by("id")] == [
        "ORDER_CREATED", "ORDER_FILLED"]


def venue_state(order: Order, *, triggered: bool) -> ExecutionReport:
    return ExecutionReport(str(order.id), ReportKind.STATE, AT, triggered=triggered, checked_until=AT)


def test_a_state_computed_before_a_stop_was_moved_does_not_trigger_the_moved_stop(account, broker, clock):
    """The engine read the order, the trader moved its stop (which untriggers it), then the tick's state,
    computed from the old stop, arrives: it must not mark the moved stop triggered."""
    from orders.services.fills import reports_apply
    from orders.services.orders import OrderChanges, order_modify

    order = place(account, broker, side="SELL", order_type="STOP_LIMIT", stop_price="100", limit_price="99",
                  quantity="1")
    read_by_engine = {str(order.id): (order.stop_price, order.limit_price, order.trailing_distance)}
    order_modify(account=account, order_id=str(order.id), changes=OrderChanges(stop_price=D("90")), broker=broker)

    reports_apply(reports=[venue_state(order, triggered=True)], broker=broker, basis=read_by_engine)

    order.refresh_from_db()
    assert (order.stop_price, order.triggered, order.checked_until) == (D("90"), False, None)

    fresh = {str(order.id): (order.stop_price, order.limit_price, order.trailing_distance)}
    reports_apply(reports=[venue_state(order, triggered=True)], broker=broker, basis=fresh)
    order.refresh_from_db()
    assert (order.triggered, order.checked_until) == (True, AT)
