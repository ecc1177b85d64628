"""Stop-loss and take-profit on Kraken, which has neither bracket nor OCO: the *pending* strategy for real.

The desk's own code runs end to end (``order_submit`` on the remote path, ``engine_tick``, ``fills``,
``protection``); only Kraken is fake: ``KrakenVenue`` (``test_kraken.py``) verifies signatures and nonces and
answers from the recorded payloads, and ``Book`` below keeps the orders and trades it has been told about so
QueryOrders / QueryTrades / CancelOrder / AmendOrder answer consistently with what was sent."""

from __future__ import annotations

from decimal import Decimal

import pytest
import responses
from django.utils import timezone

from orders.domain.errors import ProviderError
from orders.engine import engine_tick
from orders.models import Account, ExitLeg, Fill, Order, Position
from orders.services.orders import order_submit
from tests.brokers.test_kraken import (
    KrakenVenue,
    answer,
    envelope,
    kraken_order,
    kraken_trade,
    make_kraken,
    payload,
    sent,
)
from tests.builders import make_order_request

pytestmark = pytest.mark.django_db

ENTRY, SL, TP = "OENTRY-AAAAA-AAAAAA", "OSTOPL-BBBBB-BBBBBB", "OTAKEP-CCCCC-CCCCCC"


class Book:
    """What Kraken knows: orders by txid (recorded order shape) and trades by trade id (recorded trade shape)."""

    def __init__(self, venue: KrakenVenue) -> None:
        self.orders: dict[str, dict] = {}
        self.trades: dict[str, dict] = {}
        self.status_when_sent: dict[str, str] = {}
        venue.stage("AddOrder", self.add)
        venue.stage("QueryOrders", self.query)
        venue.stage("QueryTrades", lambda f: answer({t: self.trades[t] for t in f["txid"].split(",")}))
        venue.stage("CancelOrder", self.cancel)
        venue.stage("AmendOrder", self.amend)
        venue.stage("OpenOrders", lambda f: answer({"open": {
            t: raw for t, raw in self.orders.items() if raw["status"] in ("pending", "open")}}))
        venue.stage("ClosedOrders", lambda f: answer({"closed": {
            t: raw for t, raw in self.orders.items()
            if raw["status"] not in ("pending", "open") and raw["cl_ord_id"] == f.get("cl_ord_id")}}))

    def add(self, fields: dict) -> dict:
        txid = {("buy", "limit"): ENTRY, ("sell", "stop-loss"): SL, ("sell", "limit"): TP}[
            (fields["type"], fields["ordertype"])]
        self.status_when_sent[txid] = Order.objects.get(pk=fields["cl_ord_id"]).status
        self.orders[txid] = kraken_order(cl_ord_id=fields["cl_ord_id"], vol=fields["volume"], side=fields["type"],
                                         ordertype=fields["ordertype"], price=fields.get("price", "0"))
        result = payload("trading_addorder")
        result["result"]["txid"] = [txid]
        return result

    def query(self, fields: dict) -> dict:
        return answer({t: self.orders[t] for t in fields["txid"].split(",") if t in self.orders})

    def cancel(self, fields: dict) -> dict:
        for raw in self.orders.values():
            if raw["cl_ord_id"] == fields["cl_ord_id"] and raw["status"] == "open":
                raw.update(status="canceled", reason="User requested", closetm=1772463900.0)
                return payload("trading_cancelorder")
        return envelope("EOrder:Unknown order")

    def amend(self, fields: dict) -> dict:
        raw = next(r for r in self.orders.values() if r["cl_ord_id"] == fields["cl_ord_id"])
        raw["vol"] = fields.get("order_qty", raw["vol"])
        return payload("trading_amendorder")

    def fill(self, txid: str, trade_id: str, *, vol: str, price: str, time: float) -> None:
        raw = self.orders[txid]
        executed = Decimal(raw["vol_exec"]) + Decimal(vol)
        self.trades[trade_id] = kraken_trade(ordertxid=txid, vol=vol, price=price, time=time,
                                             side=raw["descr"]["type"])
        raw.update(vol_exec=str(executed), trades=[*raw.get("trades", []), trade_id], price=price)
        if executed == Decimal(raw["vol"]):
            raw.update(status="closed", closetm=time)


@pytest.fixture
def venue():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield KrakenVenue(mock)


@pytest.fixture
def kraken(venue):
    return make_kraken()


@pytest.fixture
def book(venue):
    return Book(venue)


@pytest.fixture
def kraken_account(db) -> Account:
    return Account.objects.create(name="kraken-desk", broker="kraken", cash=Decimal("100000"))


def submit_entry(account, kraken, quantity="0.01"):
    request = make_order_request(symbol="XBTUSD", quantity=quantity, order_type="LIMIT", limit_price="30000.0",
                                 stop_loss="29000.0", take_profit="31000.0", client_order_id="entry-1")
    return order_submit(account=account, request=request, broker=kraken, actor="test").order


def tick(account, kraken):
    return engine_tick(accounts=[account], broker=kraken, now=timezone.now())


def leg_orders(entry) -> dict[str, Order]:
    return {o.leg_role: o for o in Order.objects.filter(parent=entry, exit_leg__isnull=False)}


def test_the_entry_is_recorded_pending_sent_alone_then_open(venue, kraken, book, kraken_account):
    entry = submit_entry(kraken_account, kraken)
    assert book.status_when_sent[ENTRY] == "PENDING"
    entry.refresh_from_db()
    assert (entry.status, entry.broker_order_id) == ("OPEN", ENTRY)
    assert sent(venue.calls_to("AddOrder")[0]) == (
        f"pair=XBTUSD&type=buy&ordertype=limit&volume=0.01&price=30000&oflags=fciq&cl_ord_id={entry.id}")
    assert {leg.strategy for leg in ExitLeg.objects.filter(entry=entry)} == {"pending"}
    assert len(venue.calls_to("AddOrder")) == 1, "nothing may rest before the entry fills"


def test_after_the_entry_fills_sl_and_tp_go_as_two_orders_and_the_survivor_is_cancelled(
        venue, kraken, book, kraken_account):
    entry = submit_entry(kraken_account, kraken)
    tick(kraken_account, kraken)
    assert len(venue.calls_to("AddOrder")) == 1, "an open entry places no leg"

    book.fill(ENTRY, "TENTRY-11111-111111", vol="0.01", price="30000.0", time=1772463600.0)
    tick(kraken_account, kraken)
    entry.refresh_from_db()
    assert entry.status == "FILLED"
    assert Fill.objects.get(order=entry).broker_fill_id == "TENTRY-11111-111111"
    assert Position.objects.get(account=kraken_account, symbol="XBTUSD").quantity == Decimal("0.01")
    legs = leg_orders(entry)
    sl_call, tp_call = venue.calls_to("AddOrder")[1:]
    assert sent(sl_call) == (f"pair=XBTUSD&type=sell&ordertype=stop-loss&volume=0.01&price=29000"
                             f"&oflags=fciq&cl_ord_id={legs['stop_loss'].id}")
    assert sent(tp_call) == (f"pair=XBTUSD&type=sell&ordertype=limit&volume=0.01&price=31000"
                             f"&oflags=fciq&cl_ord_id={legs['take_profit'].id}")
    assert (legs["stop_loss"].status, legs["stop_loss"].broker_order_id) == ("OPEN", SL)
    assert (legs["take_profit"].status, legs["take_profit"].broker_order_id) == ("OPEN", TP)
    assert {leg.role: leg.status for leg in ExitLeg.objects.filter(entry=entry)} == {
        "stop_loss": "PLACED", "take_profit": "PLACED"}

    book.fill(SL, "TSTOPL-22222-222222", vol="0.01", price="28990.0", time=1772463800.0)
    tick(kraken_account, kraken)
    assert set(venue.calls_to("QueryOrders")[-1].fields["txid"].split(",")) == {SL, TP}
    (cancel,) = venue.calls_to("CancelOrder")
    assert sent(cancel) == f"cl_ord_id={legs['take_profit'].id}"
    legs = leg_orders(entry)
    assert (legs["stop_loss"].status, legs["take_profit"].status) == ("FILLED", "CANCELLED")
    assert Position.objects.get(account=kraken_account, symbol="XBTUSD").quantity == 0
    assert {leg.role: (leg.status, leg.end_reason) for leg in ExitLeg.objects.filter(entry=entry)} == {
        "stop_loss": ("FILLED", "filled"), "take_profit": ("CANCELLED", "sibling_filled")}
    assert book.orders[TP]["status"] == "canceled"

    calls = len(venue.calls)
    tick(kraken_account, kraken)
    assert [c.endpoint for c in venue.calls[calls:]] == [], "nothing left working: the engine asks Kraken nothing"


def test_a_take_profit_fill_cancels_the_stop_loss(venue, kraken, book, kraken_account):
    entry = submit_entry(kraken_account, kraken)
    book.fill(ENTRY, "TENTRY-11111-111111", vol="0.01", price="30000.0", time=1772463600.0)
    tick(kraken_account, kraken)
    book.fill(TP, "TTAKEP-33333-333333", vol="0.01", price="31000.0", time=1772463800.0)
    tick(kraken_account, kraken)
    legs = leg_orders(entry)
    assert sent(venue.calls_to("CancelOrder")[0]) == f"cl_ord_id={legs['stop_loss'].id}"
    assert (legs["stop_loss"].status, legs["take_profit"].status) == ("CANCELLED", "FILLED")
    assert Fill.objects.get(order=legs["take_profit"]).price == Decimal("31000.0")


def test_legs_cover_a_partial_entry_fill_and_grow_in_place_as_it_fills(venue, kraken, book, kraken_account):
    entry = submit_entry(kraken_account, kraken)
    book.fill(ENTRY, "TENTRY-11111-111111", vol="0.004", price="30000.0", time=1772463600.0)
    tick(kraken_account, kraken)
    sl_call, tp_call = venue.calls_to("AddOrder")[1:]
    assert sl_call.fields["volume"] == tp_call.fields["volume"] == "0.004"

    book.fill(ENTRY, "TENTRY-22222-222222", vol="0.006", price="29999.9", time=1772463650.0)
    tick(kraken_account, kraken)
    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", Decimal("0.01"))
    assert sorted(Fill.objects.filter(order=entry).values_list("broker_fill_id", flat=True)) == [
        "TENTRY-11111-111111", "TENTRY-22222-222222"]
    legs = leg_orders(entry)
    amends = {c.fields["cl_ord_id"]: c.fields["order_qty"] for c in venue.calls_to("AmendOrder")}
    assert amends == {str(legs["stop_loss"].id): "0.01", str(legs["take_profit"].id): "0.01"}
    assert len(venue.calls_to("AddOrder")) == 3, "grown in place, not placed again"


def test_an_entry_whose_answer_was_lost_is_found_by_the_engine_and_then_protected(venue, kraken, book, kraken_account):
    def placed_but_answer_lost(fields):
        book.add(fields)
        return 502, "<html>502 Bad Gateway</html>"
    venue.stage("AddOrder", placed_but_answer_lost, book.add)
    with pytest.raises(ProviderError):
        submit_entry(kraken_account, kraken)
    entry = Order.objects.get(client_order_id="entry-1")
    assert (entry.status, entry.broker_order_id) == ("PENDING", "")
    assert len(venue.calls_to("AddOrder")) == 1, "an order is never blindly resent"

    tick(kraken_account, kraken)
    entry.refresh_from_db()
    assert (entry.status, entry.broker_order_id) == ("OPEN", ENTRY)
    assert venue.calls_to("OpenOrders")[0].fields == {"nonce": venue.calls_to("OpenOrders")[0].fields["nonce"],
                                                      "trades": "true"}

    book.fill(ENTRY, "TENTRY-11111-111111", vol="0.01", price="30000.0", time=1772463600.0)
    tick(kraken_account, kraken)
    assert venue.calls_to("QueryOrders")[-1].fields["txid"] == ENTRY
    legs = leg_orders(entry)
    assert (legs["stop_loss"].status, legs["take_profit"].status) == ("OPEN", "OPEN")
