"""Exit legs of entries submitted with stop_loss / take_profit on a venue without native brackets:
placed once the entry fills, sized to what has filled, one-cancels-the-other, gone with the position."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from orders.brokers.paper_market import seconds_since_epoch
from orders.domain.enums import OrderType, Side
from orders.models import Event, Order, Position
from orders.services.orders import order_cancel, order_submit
from orders.services.positions import position_close
from tests.builders import make_account, make_order_request, run_engine

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def whale(db):
    """An account rich enough to buy more AAPL than the book shows in one second."""
    return make_account(name="whale", cash=D("10000000"))


def enter(account, broker, *, quantity=10, side=Side.BUY, sl_gap="1", tp_gap="3", **fields) -> Order:
    """Submit an entry with a stop-loss ``sl_gap`` and a take-profit ``tp_gap`` away from the touch."""
    q = broker.quote("AAPL", now=timezone.now())
    if side is Side.BUY:
        sl, tp = q.ask - D(sl_gap), q.ask + D(tp_gap)
    else:
        sl, tp = q.bid + D(sl_gap), q.bid - D(tp_gap)
    request = make_order_request(quantity=quantity, side=side, stop_loss=sl, take_profit=tp, **fields)
    return order_submit(account=account, request=request, broker=broker).order


def legs(entry: Order) -> dict[str, Order]:
    """The leg orders of an entry by role (each leg held by one order in these tests)."""
    found = {}
    for order in Order.objects.filter(parent=entry).order_by("created_at"):
        assert order.leg_role not in found, "a leg is held by more than one order"
        found[order.leg_role] = order
    return found


def shock(broker, pct: str) -> None:
    """Move AAPL by ``pct`` percent from the next second on."""
    broker.faults.shock("AAPL", pct, from_second=seconds_since_epoch(timezone.now()) + 1)


def unprotected_alerts(account) -> list[dict]:
    return [e.payload for e in Event.objects.filter(account=account, kind="error").order_by("id")
            if e.payload["code"] == "POSITION_UNPROTECTED"]


def test_no_leg_exists_before_the_entry_fills(account, broker, clock):
    entry = enter(account, broker)
    assert legs(entry) == {}


def test_an_entry_fill_places_a_stop_and_a_limit_on_the_other_side_sized_to_the_fill(account, broker, clock):
    entry = enter(account, broker, quantity=10)
    run_engine(account, broker, seconds=1, clock=clock)
    entry.refresh_from_db()
    assert entry.status == "FILLED"
    found = legs(entry)
    sl, tp = found["stop_loss"], found["take_profit"]
    assert (sl.order_type, sl.side, sl.stop_price, sl.quantity) == ("STOP", "SELL", entry.stop_loss, 10)
    assert (tp.order_type, tp.side, tp.limit_price, tp.quantity) == ("LIMIT", "SELL", entry.take_profit, 10)
    assert sl.reduce_only and tp.reduce_only
    assert (sl.client_order_id, tp.client_order_id) == (f"{entry.id}-sl", f"{entry.id}-tp")
    assert {sl.status, tp.status} == {"OPEN"}


def test_leg_client_order_ids_derive_from_the_entrys_client_order_id(account, broker, clock):
    entry = enter(account, broker, client_order_id="swing-42")
    run_engine(account, broker, seconds=1, clock=clock)
    found = legs(entry)
    assert (found["stop_loss"].client_order_id, found["take_profit"].client_order_id) == ("swing-42-sl",
                                                                                          "swing-42-tp")


def test_a_short_entry_gets_buy_legs_with_the_stop_above_and_the_target_below(account, broker, clock):
    entry = enter(account, broker, side=Side.SELL, quantity=5)
    run_engine(account, broker, seconds=1, clock=clock)
    found = legs(entry)
    assert (found["stop_loss"].side, found["take_profit"].side) == ("BUY", "BUY")
    assert found["stop_loss"].stop_price > found["take_profit"].limit_price


def test_legs_are_sized_to_each_partial_fill_and_grow_with_the_next(whale, broker, clock):
    entry = enter(whale, broker, quantity=3000)
    sizes = []
    for seconds in (0, 1, 1, 1, 1):
        run_engine(whale, broker, seconds=seconds, clock=clock)
        entry.refresh_from_db()
        found = legs(entry)
        assert found["stop_loss"].quantity == found["take_profit"].quantity == entry.filled_quantity
        sizes.append(entry.filled_quantity)
    assert sizes[0] < 3000
    assert sizes == sorted(sizes)
    assert len(set(sizes)) > 1
    assert entry.status == "FILLED"
    assert legs(entry)["stop_loss"].quantity == 3000


def test_a_stop_loss_fill_cancels_the_take_profit(account, broker, clock):
    entry = enter(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)
    shock(broker, "-3")
    run_engine(account, broker, seconds=2, clock=clock)
    found = legs(entry)
    assert (found["stop_loss"].status, found["take_profit"].status) == ("FILLED", "CANCELLED")
    assert Position.objects.get(account=account, symbol="AAPL").quantity == 0


def test_a_take_profit_fill_cancels_the_stop_loss(account, broker, clock):
    entry = enter(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)
    shock(broker, "3")
    run_engine(account, broker, seconds=2, clock=clock)
    found = legs(entry)
    assert (found["take_profit"].status, found["stop_loss"].status) == ("FILLED", "CANCELLED")
    assert found["take_profit"].average_fill_price >= entry.take_profit
    assert Position.objects.get(account=account, symbol="AAPL").quantity == 0


def test_closing_the_position_cancels_both_legs(account, broker, clock):
    entry = enter(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)
    close = position_close(account=account, position_id="paper-pos-AAPL", broker=broker)
    assert close.status == "FILLED"
    found = legs(entry)
    assert (found["stop_loss"].status, found["take_profit"].status) == ("CANCELLED", "CANCELLED")


def test_an_entry_cancelled_before_it_fills_never_gets_legs(account, broker, clock):
    q = broker.quote("AAPL", now=timezone.now())
    request = make_order_request(order_type=OrderType.LIMIT, limit_price=q.bid - 5, stop_loss=q.bid - 8,
                                 take_profit=q.bid + 5)
    entry = order_submit(account=account, request=request, broker=broker).order
    run_engine(account, broker, seconds=1, clock=clock)
    order_cancel(account=account, order_id=str(entry.id), broker=broker)
    run_engine(account, broker, seconds=60, clock=clock)
    assert legs(entry) == {}


def test_a_rejected_leg_is_placed_again_on_a_later_tick_without_an_alert(account, broker, clock):
    broker.faults.reject_next(1, kind="STOP")
    entry = enter(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)
    assert set(legs(entry)) == {"take_profit"}
    run_engine(account, broker, seconds=1, clock=clock)
    assert legs(entry)["stop_loss"].status == "OPEN"
    assert unprotected_alerts(account) == []


def test_a_leg_that_stays_unplaceable_raises_position_unprotected_once(account, broker, clock):
    broker.faults.reject_next(100, kind="STOP")
    entry = enter(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)
    for _ in range(4):
        run_engine(account, broker, seconds=5, clock=clock)
    [alert] = unprotected_alerts(account)
    assert alert["type"] == "error"
    assert alert["details"]["order_id"] == str(entry.id)
    assert alert["details"]["symbol"] == "AAPL"
    assert [failed["type"] for failed in alert["details"]["failed_exits"]] == ["StopLoss"]
    assert set(legs(entry)) == {"take_profit"}
