"""Stop-loss and take-profit on Binance Spot, which has OCO order lists but no brackets: the *native OCO*
strategy for real.

The desk's own code runs end to end (``order_submit`` on the remote path, ``engine_tick``, ``fills``,
``services/protection.py``); only Binance is fake: ``BinanceVenue`` below serves the recorded market payloads and keeps
the orders, order lists and trades it has been told about, so ``GET /api/v3/order``, ``myTrades`` and cancels
answer consistently with what was sent."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from django.utils import timezone

from orders.brokers.binance import BinanceBroker
from orders.domain.enums import OrderType
from orders.engine import engine_tick
from orders.models import Account, ExitLeg, Fill, Order, Position
from orders.services.orders import order_submit
from tests.brokers.test_binance import BASE, NOW_MS, make_broker, payload
from tests.builders import make_order_request

pytestmark = pytest.mark.django_db

ORDER = f"{BASE}/api/v3/order"
OCO = f"{BASE}/api/v3/orderList/oco"
MY_TRADES = f"{BASE}/api/v3/myTrades"


def params_of(request) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))


def binance_error(code: int, msg: str):
    return 400, {}, json.dumps({"code": code, "msg": msg})


class BinanceVenue:
    """What Binance knows: orders by client order id (our order id), order lists, trades by order id."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.orders: dict[str, dict] = {}
        self.trades: dict[int, list[dict]] = {}
        self.next_order_id, self.next_list_id, self.next_trade_id = 28457190, 1042, 3917265
        mock.get(f"{BASE}/api/v3/time", json=payload("market_time"))
        mock.get(f"{BASE}/api/v3/exchangeInfo", json=payload("market_exchangeinfo"))
        mock.get(f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"))
        # the desk checks a new order against the venue's own figures (issue #13): cash only, in USDT
        mock.get(f"{BASE}/api/v3/account", json={**payload("account_get"), "balances": [
            {"asset": "USDT", "free": "100000.00000000", "locked": "0.00000000"}]})
        mock.add_callback("POST", re.compile(rf"{re.escape(ORDER)}(\?.*)?$"), callback=self.new_order)
        mock.add_callback("POST", re.compile(rf"{re.escape(OCO)}(\?.*)?$"), callback=self.new_oco)
        mock.add_callback("GET", re.compile(rf"{re.escape(ORDER)}(\?.*)?$"), callback=self.query)
        mock.add_callback("DELETE", re.compile(rf"{re.escape(ORDER)}(\?.*)?$"), callback=self.cancel)
        mock.add_callback("GET", re.compile(rf"{re.escape(MY_TRADES)}(\?.*)?$"), callback=self.my_trades)

    # -- what was sent --------------------------------------------------------------------------------
    def sent(self, method: str, url: str) -> list[dict[str, str]]:
        return [params_of(c.request) for c in self.mock.calls
                if c.request.method == method and c.request.url.split("?")[0] == url]

    # -- the venue's orders -----------------------------------------------------------------------------
    def _add(self, *, client_id: str, symbol: str, side: str, kind: str, qty: str, price: str = "0",
             stop: str = "0", list_id: int = -1) -> dict:
        self.next_order_id += 1
        order = {**payload("trade_order_query"), "orderId": self.next_order_id, "clientOrderId": client_id,
                 "symbol": symbol, "side": side, "type": kind, "origQty": qty, "price": price, "stopPrice": stop,
                 "orderListId": list_id, "status": "NEW", "executedQty": "0", "cummulativeQuoteQty": "0",
                 "isWorking": kind != "STOP_LOSS", "time": NOW_MS, "updateTime": NOW_MS}
        self.orders[client_id] = order
        return order

    def fill(self, client_id: str, *, qty: str, price: str, at_ms: int = NOW_MS + 30000) -> None:
        order = self.orders[client_id]
        executed = Decimal(order["executedQty"]) + Decimal(qty)
        self.next_trade_id += 1
        self.trades.setdefault(order["orderId"], []).append({
            **payload("trade_mytrades")[0], "id": self.next_trade_id, "orderId": order["orderId"],
            "orderListId": order["orderListId"], "price": price, "qty": qty,
            "quoteQty": str(Decimal(qty) * Decimal(price)), "commission": "0", "commissionAsset": "USDT",
            "time": at_ms, "isBuyer": order["side"] == "BUY"})
        quote = Decimal(order["cummulativeQuoteQty"]) + Decimal(qty) * Decimal(price)
        done = executed == Decimal(order["origQty"])
        order.update(executedQty=str(executed), cummulativeQuoteQty=str(quote), updateTime=at_ms,
                     status="FILLED" if done else "PARTIALLY_FILLED")
        if done and order["orderListId"] != -1:        # the order list's one-cancels-other
            for other in self.orders.values():
                if other["orderListId"] == order["orderListId"] and other["status"] == "NEW":
                    other.update(status="EXPIRED", updateTime=at_ms)

    # -- HTTP -------------------------------------------------------------------------------------------
    def new_order(self, request):
        p = params_of(request)
        order = self._add(client_id=p["newClientOrderId"], symbol=p["symbol"], side=p["side"], kind=p["type"],
                          qty=p["quantity"], price=p.get("price", "0"), stop=p.get("stopPrice", "0"))
        return 200, {}, json.dumps({**payload("trade_order_new"), **{k: order[k] for k in (
            "orderId", "clientOrderId", "symbol", "side", "type", "origQty", "price", "status")}})

    def new_oco(self, request):
        p = params_of(request)
        self.next_list_id += 1
        legs = []
        for at in ("above", "below"):
            kind = p[f"{at}Type"]
            legs.append(self._add(client_id=p[f"{at}ClientOrderId"], symbol=p["symbol"], side=p["side"], kind=kind,
                                  qty=p["quantity"], price=p.get(f"{at}Price", "0"),
                                  stop=p.get(f"{at}StopPrice", "0"), list_id=self.next_list_id))
        body = {**payload("trade_orderlist_oco"), "orderListId": self.next_list_id,
                "listClientOrderId": p["listClientOrderId"],
                "orders": [{"symbol": o["symbol"], "orderId": o["orderId"], "clientOrderId": o["clientOrderId"]}
                           for o in legs],
                "orderReports": [{k: o[k] for k in ("symbol", "orderId", "orderListId", "clientOrderId", "price",
                                                    "origQty", "executedQty", "status", "type", "side",
                                                    "stopPrice")} for o in legs]}
        return 200, {}, json.dumps(body)

    def query(self, request):
        order = self.orders.get(params_of(request)["origClientOrderId"])
        if order is None:
            return binance_error(-2013, "Order does not exist.")
        return 200, {}, json.dumps(order)

    def cancel(self, request):
        order = self.orders.get(params_of(request)["origClientOrderId"])
        if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return binance_error(-2011, "Unknown order sent.")
        order.update(status="CANCELED")
        return 200, {}, json.dumps(order)

    def my_trades(self, request):
        return 200, {}, json.dumps(self.trades.get(int(params_of(request)["orderId"]), []))


@pytest.fixture
def venue():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield BinanceVenue(mock)


@pytest.fixture
def binance(venue) -> BinanceBroker:
    return make_broker()


@pytest.fixture
def binance_account(db, binance) -> Account:
    return Account.objects.create(name="binance-desk", broker=binance.name, cash=Decimal("100000"))


def submit_entry(account, binance, **changes):
    fields = {"symbol": "BTCUSDT", "quantity": "0.002", "order_type": "LIMIT", "limit_price": "67000",
              "stop_loss": "66000", "take_profit": "69000", "client_order_id": "entry-1"}
    fields.update(changes)
    fields["order_type"] = OrderType(fields["order_type"])
    request = make_order_request(**{k: v for k, v in fields.items() if v is not None})
    return order_submit(account=account, request=request, broker=binance, actor="test").order


def tick(account, binance):
    return engine_tick(accounts=[account], broker=binance, now=timezone.now())


def leg_orders(entry) -> list[Order]:
    return list(Order.objects.filter(parent=entry, exit_leg__isnull=False).order_by("created_at", "leg_role"))


def by_role(entry) -> dict[str, Order]:
    return {o.leg_role: o for o in leg_orders(entry)}


def without_signing(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in ("timestamp", "signature", "recvWindow")}


def test_the_entry_goes_alone_and_rests_open(venue, binance, binance_account):
    entry = submit_entry(binance_account, binance)
    (sent,) = venue.sent("POST", ORDER)
    assert without_signing(sent) == {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                     "quantity": "0.002", "price": "67000", "newClientOrderId": str(entry.id),
                                     "newOrderRespType": "RESULT"}
    entry.refresh_from_db()
    assert entry.status == "OPEN" and entry.broker_order_id
    assert {leg.strategy for leg in ExitLeg.objects.filter(entry=entry)} == {"native_oco"}
    assert leg_orders(entry) == [] and not venue.sent("POST", OCO), "nothing may rest before the entry fills"

    tick(binance_account, binance)
    assert not venue.sent("POST", OCO), "an open entry places no leg"


def test_after_the_fill_one_oco_goes_and_a_stop_fill_leaves_the_take_profit_cancelled(venue, binance,
                                                                                      binance_account):
    entry = submit_entry(binance_account, binance)
    venue.fill(str(entry.id), qty="0.002", price="67000")
    tick(binance_account, binance)
    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", Decimal("0.002"))
    assert Position.objects.get(account=binance_account, symbol="BTCUSDT").quantity == Decimal("0.002")

    legs = by_role(entry)
    (oco,) = venue.sent("POST", OCO)
    assert without_signing(oco) == {
        "symbol": "BTCUSDT", "listClientOrderId": oco["listClientOrderId"], "side": "SELL", "quantity": "0.002",
        "aboveType": "LIMIT_MAKER", "aboveClientOrderId": str(legs["take_profit"].id), "abovePrice": "69000",
        "belowType": "STOP_LOSS", "belowClientOrderId": str(legs["stop_loss"].id), "belowStopPrice": "66000",
        "newOrderRespType": "RESULT"}
    assert len(venue.sent("POST", ORDER)) == 1, "the legs go as one order list, not as two orders"
    assert {role: (o.status, o.venue_oco_id) for role, o in legs.items()} == {
        "stop_loss": ("OPEN", f"oco-{entry.id}"), "take_profit": ("OPEN", f"oco-{entry.id}")}
    assert {leg.role: leg.status for leg in ExitLeg.objects.filter(entry=entry)} == {
        "stop_loss": "PLACED", "take_profit": "PLACED"}

    venue.fill(str(legs["stop_loss"].id), qty="0.002", price="65990", at_ms=NOW_MS + 90000)
    assert venue.orders[str(legs["take_profit"].id)]["status"] == "EXPIRED"
    tick(binance_account, binance)
    legs = by_role(entry)
    assert (legs["stop_loss"].status, legs["take_profit"].status) == ("FILLED", "CANCELLED")
    assert Fill.objects.get(order=legs["stop_loss"]).price == Decimal("65990")
    assert Position.objects.get(account=binance_account, symbol="BTCUSDT").quantity == 0
    assert {leg.role: (leg.status, leg.end_reason) for leg in ExitLeg.objects.filter(entry=entry)} == {
        "stop_loss": ("FILLED", "filled"), "take_profit": ("CANCELLED", "sibling_filled")}

    tick(binance_account, binance)
    assert len(venue.sent("POST", OCO)) == 1, "no second OCO once the position is flat"
    assert len(venue.sent("POST", ORDER)) == 1


def test_a_stop_loss_alone_is_one_stop_order_not_an_oco(venue, binance, binance_account):
    entry = submit_entry(binance_account, binance, take_profit=None)
    assert {leg.strategy for leg in ExitLeg.objects.filter(entry=entry)} == {"pending"}
    venue.fill(str(entry.id), qty="0.002", price="67000")
    tick(binance_account, binance)
    (stop,) = leg_orders(entry)
    entry_post, stop_post = venue.sent("POST", ORDER)
    assert without_signing(stop_post) == {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS",
                                          "quantity": "0.002", "stopPrice": "66000",
                                          "newClientOrderId": str(stop.id), "newOrderRespType": "RESULT"}
    assert not venue.sent("POST", OCO)
    assert (stop.leg_role, stop.status) == ("stop_loss", "OPEN")


def test_a_partial_entry_fill_gets_a_pair_for_that_part_and_a_second_pair_for_the_rest(venue, binance,
                                                                                      binance_account):
    entry = submit_entry(binance_account, binance)
    venue.fill(str(entry.id), qty="0.0008", price="67000")
    tick(binance_account, binance)
    (first,) = venue.sent("POST", OCO)
    assert first["quantity"] == "0.0008"

    venue.fill(str(entry.id), qty="0.0012", price="66999.5", at_ms=NOW_MS + 60000)
    tick(binance_account, binance)
    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", Decimal("0.002"))
    first, second = venue.sent("POST", OCO)
    assert second["quantity"] == "0.0012", "Binance cannot resize an order list: the rest gets its own"
    assert first["listClientOrderId"] != second["listClientOrderId"]
    legs = leg_orders(entry)
    assert sorted((o.leg_role, o.quantity, o.status) for o in legs) == [
        ("stop_loss", Decimal("0.0008"), "OPEN"), ("stop_loss", Decimal("0.0012"), "OPEN"),
        ("take_profit", Decimal("0.0008"), "OPEN"), ("take_profit", Decimal("0.0012"), "OPEN")]
    assert {o.venue_oco_id for o in legs} == {f"oco-{entry.id}", f"oco-{entry.id}-2"}
    assert not venue.sent("DELETE", ORDER), "the first pair stays working"
