"""Stop-loss and take-profit on Kraken, which has neither bracket nor OCO: the *pending* strategy for real, with
one resting exit. A resting sell holds its volume of the balance at Kraken, so a full-size take-profit beside the
full-size stop would be refused (``EOrder:Insufficient funds``); the stop rests at Kraken and the engine watches
the take-profit on the quote, firing it by cancelling the stop and selling at market.

The desk's own code runs end to end (``order_submit`` on the remote path, ``engine_tick``, ``fills``,
``protection``); only Kraken is fake: ``KrakenVenue`` (``test_kraken.py``) verifies signatures and nonces and
answers from the recorded payloads, and ``Book`` below keeps the balances, orders and trades it has been told
about so BalanceEx / TradeBalance / QueryOrders / QueryTrades / CancelOrder / AmendOrder answer consistently with
what was sent. (``test_kraken_fake.py`` and ``tests/e2e/test_venue_kraken.py`` do the same against the fake
Kraken process.)"""

from __future__ import annotations

from decimal import Decimal

import pytest
import responses
from django.utils import timezone

from orders.domain.errors import ProviderError
from orders.engine import engine_tick
from orders.models import Account, Alert, ExitLeg, Fill, Order, Position
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
    """What Kraken knows: balances, orders by txid (recorded order shape) and trades by trade id (recorded trade
    shape). A market order fills at once at ``market``; a resting order fills when the test says so."""

    def __init__(self, venue: KrakenVenue) -> None:
        self.orders: dict[str, dict] = {}
        self.trades: dict[str, dict] = {}
        self.balances = {"ZUSD": Decimal("100000"), "XXBT": Decimal("0")}
        self.market = Decimal("30000.0")
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
        venue.stage("BalanceEx", self.balance_ex)
        venue.stage("TradeBalance", lambda f: answer({
            "eb": str(self.balances["ZUSD"] + self.balances["XXBT"] * self.market), "m": "0.0000"}))

    def add(self, fields: dict) -> dict:
        txid = {("buy", "limit"): ENTRY, ("sell", "stop-loss"): SL, ("sell", "limit"): TP, ("sell", "market"): TP}[
            (fields["type"], fields["ordertype"])]
        self.status_when_sent[txid] = Order.objects.get(pk=fields["cl_ord_id"]).status
        self.orders[txid] = kraken_order(cl_ord_id=fields["cl_ord_id"], vol=fields["volume"], side=fields["type"],
                                         ordertype=fields["ordertype"], price=fields.get("price", "0"))
        if fields["ordertype"] == "market":
            self.fill(txid, f"T{txid[1:]}", vol=fields["volume"], price=str(self.market), time=1772464000.0)
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

    def balance_ex(self, fields: dict) -> dict:
        held = {"ZUSD": Decimal(0), "XXBT": Decimal(0)}
        for raw in self.orders.values():
            if raw["status"] == "open":
                remaining = Decimal(raw["vol"]) - Decimal(raw["vol_exec"])
                if raw["descr"]["type"] == "sell":
                    held["XXBT"] += remaining
                else:
                    held["ZUSD"] += remaining * Decimal(raw["descr"]["price"])
        return answer({asset: {"balance": str(amount), "hold_trade": str(held[asset])}
                       for asset, amount in self.balances.items()})

    def fill(self, txid: str, trade_id: str, *, vol: str, price: str, time: float) -> None:
        raw = self.orders[txid]
        executed = Decimal(raw["vol_exec"]) + Decimal(vol)
        trade = kraken_trade(ordertxid=txid, vol=vol, price=price, time=time, side=raw["descr"]["type"])
        self.trades[trade_id] = trade
        sign = 1 if raw["descr"]["type"] == "buy" else -1
        self.balances["XXBT"] += sign * Decimal(vol)
        self.balances["ZUSD"] -= sign * Decimal(trade["cost"]) + Decimal(trade["fee"])
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


def no_unprotected_alert(account) -> bool:
    return not Alert.objects.filter(account=account, kind=Alert.Kind.POSITION_UNPROTECTED).exists()


def test_after_the_entry_fills_only_the_stop_rests_and_the_take_profit_is_watched(venue, kraken, book, kraken_account):
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
    (sl_call,) = venue.calls_to("AddOrder")[1:]
    assert sent(sl_call) == (f"pair=XBTUSD&type=sell&ordertype=stop-loss&volume=0.01&price=29000"
                             f"&oflags=fciq&cl_ord_id={legs['stop_loss'].id}")
    assert (legs["stop_loss"].status, legs["stop_loss"].broker_order_id) == ("OPEN", SL)
    assert "take_profit" not in legs, "the take-profit has no order while it is watched"
    take_profit = ExitLeg.objects.get(entry=entry, role="take_profit")
    assert (take_profit.status, take_profit.emulated) == ("PLACED", True)
    assert ExitLeg.objects.get(entry=entry, role="stop_loss").status == "PLACED"
    assert no_unprotected_alert(kraken_account)

    tick(kraken_account, kraken)
    assert len(venue.calls_to("AddOrder")) == 2, "nothing more rests while the quote is below the take-profit"


def test_a_quote_at_the_take_profit_cancels_the_stop_then_sells_at_market(venue, kraken, book, kraken_account):
    entry = submit_entry(kraken_account, kraken)
    book.fill(ENTRY, "TENTRY-11111-111111", vol="0.01", price="30000.0", time=1772463600.0)
    tick(kraken_account, kraken)
    stop_id = leg_orders(entry)["stop_loss"].id

    at_target = payload("public_ticker")
    at_target["result"]["XXBTZUSD"].update(b=["31000.0", "1", "1.000"], a=["31000.1", "1", "1.000"],
                                           c=["31000.0", "0.01"])
    venue.stage("Ticker", at_target)
    book.market = Decimal("31000.0")
    calls = len(venue.calls)
    tick(kraken_account, kraken)
    sent_now = [(c.endpoint, c.fields.get("ordertype")) for c in venue.calls[calls:]
                if c.endpoint in ("CancelOrder", "AddOrder")]
    assert sent_now == [("CancelOrder", None), ("AddOrder", "market")], "the stop goes first: it holds the balance"
    assert sent(venue.calls_to("CancelOrder")[0]) == f"cl_ord_id={stop_id}"
    legs = leg_orders(entry)
    assert sent(venue.calls_to("AddOrder")[-1]) == (
        f"pair=XBTUSD&type=sell&ordertype=market&volume=0.01&oflags=fciq&cl_ord_id={legs['take_profit'].id}")

    tick(kraken_account, kraken)
    legs = leg_orders(entry)
    assert (legs["stop_loss"].status, legs["take_profit"].status) == ("CANCELLED", "FILLED")
    assert Fill.objects.get(order=legs["take_profit"]).price == Decimal("31000.0")
    assert Position.objects.get(account=kraken_account, symbol="XBTUSD").quantity == 0
    assert {leg.role: leg.status for leg in ExitLeg.objects.filter(entry=entry)} == {
        "stop_loss": "CANCELLED", "take_profit": "FILLED"}
    assert book.orders[SL]["status"] == "canceled" and book.balances["XXBT"] == 0
    assert no_unprotected_alert(kraken_account)


def test_a_stop_filled_at_kraken_ends_the_watched_take_profit_without_a_cancel(venue, kraken, book, kraken_account):
    entry = submit_entry(kraken_account, kraken)
    book.fill(ENTRY, "TENTRY-11111-111111", vol="0.01", price="30000.0", time=1772463600.0)
    tick(kraken_account, kraken)
    book.fill(SL, "TSTOPL-22222-222222", vol="0.01", price="28990.0", time=1772463800.0)
    tick(kraken_account, kraken)
    legs = leg_orders(entry)
    assert legs["stop_loss"].status == "FILLED"
    assert Position.objects.get(account=kraken_account, symbol="XBTUSD").quantity == 0
    assert {leg.role: leg.status for leg in ExitLeg.objects.filter(entry=entry)} == {
        "stop_loss": "FILLED", "take_profit": "CANCELLED"}
    assert venue.calls_to("CancelOrder") == [], "the watched take-profit had nothing at Kraken to cancel"

    calls = len(venue.calls)
    tick(kraken_account, kraken)
    assert [c.endpoint for c in venue.calls[calls:]] == [], "nothing left working: the engine asks Kraken nothing"


def test_the_stop_covers_a_partial_entry_fill_and_grows_in_place_as_it_fills(venue, kraken, book, kraken_account):
    entry = submit_entry(kraken_account, kraken)
    book.fill(ENTRY, "TENTRY-11111-111111", vol="0.004", price="30000.0", time=1772463600.0)
    tick(kraken_account, kraken)
    (sl_call,) = venue.calls_to("AddOrder")[1:]
    assert sl_call.fields["volume"] == "0.004"

    book.fill(ENTRY, "TENTRY-22222-222222", vol="0.006", price="29999.9", time=1772463650.0)
    tick(kraken_account, kraken)
    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", Decimal("0.01"))
    assert sorted(Fill.objects.filter(order=entry).values_list("broker_fill_id", flat=True)) == [
        "TENTRY-11111-111111", "TENTRY-22222-222222"]
    legs = leg_orders(entry)
    amends = {c.fields["cl_ord_id"]: c.fields["order_qty"] for c in venue.calls_to("AmendOrder")}
    assert amends == {str(legs["stop_loss"].id): "0.01"}
    assert len(venue.calls_to("AddOrder")) == 2, "grown in place, not placed again"


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
    assert leg_orders(entry)["stop_loss"].status == "OPEN"
    assert ExitLeg.objects.get(entry=entry, role="take_profit").status == "PLACED"
