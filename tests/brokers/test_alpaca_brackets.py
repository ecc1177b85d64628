"""Stop-loss and take-profit on Alpaca, which brackets natively: the *native bracket* strategy for real.

The desk's own code runs end to end (``order_submit`` on the remote path, ``engine_tick``, ``fills``,
``services/protection.py``); only Alpaca is fake: ``AlpacaVenue`` below answers ``POST /v2/orders`` with a bracket built
from the recorded reply (``alpaca_orders_post_bracket.json``) and keeps what it was sent, so the listing,
lookups and cancels that ``sync`` makes answer consistently with it."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.test import Client
from django.utils import timezone

from orders.brokers.alpaca import AlpacaBroker, AlpacaConfig
from orders.domain.enums import OrderType
from orders.domain.errors import OrderRejected
from orders.engine import engine_tick
from orders.models import Account, ExitLeg, Fill, Order, Position
from orders.services.orders import order_cancel, order_submit
from tests.brokers.test_alpaca import DATA, KEY, NOW, PAYLOADS, SECRET, TRADING, payload
from tests.builders import make_order_request

pytestmark = pytest.mark.django_db

ENTRY, TP, SL = ("61e69015-8549-4bfd-b9c3-01e75843f47d", "0a3b7b8c-3b5e-4f5e-9b0e-6f1e2d3c4b5a",
                 "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f")
ORDERS = re.compile(rf"{re.escape(TRADING)}/v2/orders(\?.*)?$")
BY_CLIENT_ID = re.compile(rf"{re.escape(TRADING)}/v2/orders:by_client_order_id(\?.*)?$")
ONE_ORDER = re.compile(rf"{re.escape(TRADING)}/v2/orders/(?P<id>[^/?]+)(\?.*)?$")


def bracket_error(name: str) -> dict:
    return json.loads((PAYLOADS / "alpaca_bracket_errors.json").read_text())[name]


class AlpacaVenue:
    """What Alpaca knows: parent orders by id, their legs nested as Alpaca nests them."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.parents: dict[str, dict] = {}
        self.refusal: dict | None = None
        mock.get(f"{DATA}/v2/stocks/AAPL/quotes/latest", json=payload("marketdata_stocks_quotes_latest"))
        mock.get(f"{TRADING}/v2/account", json=payload("account_get"))      # the desk checks against Alpaca's figures
        mock.get(f"{TRADING}/v2/positions", json=[])
        mock.add_callback("POST", ORDERS, callback=self.post)
        mock.add_callback("GET", BY_CLIENT_ID, callback=self.by_client_id)
        mock.add_callback("GET", ONE_ORDER, callback=self.get_one)
        mock.add_callback("GET", ORDERS, callback=self.listing)
        mock.add_callback("DELETE", ONE_ORDER, callback=self.delete)

    # -- what was sent --------------------------------------------------------------------------------
    def calls_to(self, method: str, pattern: re.Pattern) -> list:
        return [c for c in self.mock.calls if c.request.method == method and pattern.match(c.request.url)]

    def posted(self) -> list[dict]:
        return [json.loads(c.request.body) for c in self.calls_to("POST", ORDERS)]

    # -- the venue's orders -----------------------------------------------------------------------------
    def every_order(self) -> dict[str, dict]:
        found = {}
        for parent in self.parents.values():
            found[parent["id"]] = parent
            for leg in parent.get("legs") or []:
                found[leg["id"]] = leg
        return found

    def order(self, alpaca_id: str) -> dict:
        return self.every_order()[alpaca_id]

    def fill(self, alpaca_id: str, *, qty: str, price: str) -> None:
        self.order(alpaca_id).update(status="filled", filled_qty=qty, filled_avg_price=price,
                                     filled_at=_now(), updated_at=_now())

    def release_legs(self) -> None:
        """The entry filled: Alpaca turns its held legs into working orders."""
        for parent in self.parents.values():
            for leg in parent.get("legs") or []:
                if leg["status"] == "held":
                    leg.update(status="new", updated_at=_now())

    def replace(self, alpaca_id: str, **changes: str) -> str:
        """A PATCH made elsewhere: a new order takes over, the old one is ``replaced`` and points at it."""
        old = self.order(alpaca_id)
        new_id = f"{alpaca_id[:-4]}beef"
        new = {**old, **changes, "id": new_id, "replaces": alpaca_id, "client_order_id": f"{old['client_order_id']}-r",
               "created_at": _now(), "updated_at": _now(), "submitted_at": _now()}
        old.update(status="replaced", replaced_by=new_id, updated_at=_now())
        self.parents[new_id] = new
        return new_id

    def cancel(self, alpaca_id: str) -> None:
        self.order(alpaca_id).update(status="canceled", canceled_at=_now(), updated_at=_now())

    # -- HTTP -------------------------------------------------------------------------------------------
    def post(self, request):
        if self.refusal is not None:
            return self.refusal["status"], {}, json.dumps(self.refusal["body"])
        body = json.loads(request.body)
        template = payload("orders_post_bracket")
        parent = {**template, "client_order_id": body["client_order_id"], "symbol": body["symbol"],
                  "qty": body["qty"], "side": body["side"], "type": body["type"], "order_type": body["type"],
                  "limit_price": body.get("limit_price"), "order_class": body.get("order_class", "simple"),
                  "created_at": _now(), "updated_at": _now(), "submitted_at": _now()}
        legs = []
        exit_side = "sell" if body["side"] == "buy" else "buy"
        if "take_profit" in body:
            legs.append({**template["legs"][0], "id": TP, "symbol": body["symbol"], "qty": body["qty"],
                         "side": exit_side, "limit_price": body["take_profit"]["limit_price"],
                         "order_class": parent["order_class"], "created_at": _now(), "updated_at": _now()})
        if "stop_loss" in body:
            stop = body["stop_loss"]
            kind = "stop_limit" if "limit_price" in stop else "stop"
            legs.append({**template["legs"][1], "id": SL, "symbol": body["symbol"], "qty": body["qty"],
                         "side": exit_side, "type": kind, "order_type": kind, "stop_price": stop["stop_price"],
                         "limit_price": stop.get("limit_price"), "order_class": parent["order_class"],
                         "created_at": _now(), "updated_at": _now()})
        parent["legs"] = legs or None
        self.parents[parent["id"]] = parent
        return 200, {}, json.dumps(parent)

    def listing(self, request):
        return 200, {}, json.dumps(copy.deepcopy(list(self.parents.values())))

    def by_client_id(self, request):
        client_id = parse_qs(urlsplit(request.url).query)["client_order_id"][0]
        found = [o for o in self.every_order().values() if o["client_order_id"] == client_id]
        if not found:
            return 404, {}, json.dumps(payload("orders_errors")["order_not_found"]["body"])
        return 200, {}, json.dumps(found[0])

    def get_one(self, request):
        alpaca_id = ONE_ORDER.match(request.url)["id"]
        if alpaca_id not in self.every_order():
            return 404, {}, json.dumps(payload("orders_errors")["order_not_found"]["body"])
        return 200, {}, json.dumps(self.order(alpaca_id))

    def delete(self, request):
        self.cancel(ONE_ORDER.match(request.url)["id"])
        return 204, {}, ""


def _now() -> str:
    return timezone.now().isoformat().replace("+00:00", "Z")


@pytest.fixture
def venue():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield AlpacaVenue(mock)


@pytest.fixture
def alpaca(venue) -> AlpacaBroker:
    config = AlpacaConfig(api_key=KEY, api_secret=SECRET, base_url=TRADING, data_url=DATA)
    return AlpacaBroker(config, sleep=lambda seconds: None, clock=lambda: NOW.timestamp())


@pytest.fixture
def alpaca_account(db) -> Account:
    return Account.objects.create(name="alpaca-desk", broker="alpaca", cash=Decimal("100000"), is_default=True)


def submit_entry(account, alpaca, **changes):
    fields = {"symbol": "AAPL", "quantity": "10", "order_type": "LIMIT", "limit_price": "170",
              "stop_loss": "165", "take_profit": "180", "client_order_id": "entry-1"}
    fields.update(changes)
    fields["order_type"] = OrderType(fields["order_type"])
    request = make_order_request(**{k: v for k, v in fields.items() if v is not None})
    return order_submit(account=account, request=request, broker=alpaca, actor="test").order


def tick(account, alpaca):
    return engine_tick(accounts=[account], broker=alpaca, now=timezone.now())


def leg_orders(entry) -> dict[str, Order]:
    return {o.leg_role: o for o in Order.objects.filter(parent=entry, exit_leg__isnull=False)}


def test_an_entry_with_both_exits_is_one_bracket_request_and_two_held_legs(venue, alpaca, alpaca_account):
    entry = submit_entry(alpaca_account, alpaca)
    (body,) = venue.posted()
    assert body == {"symbol": "AAPL", "qty": "10", "side": "buy", "time_in_force": "gtc", "type": "limit",
                    "limit_price": "170", "client_order_id": str(entry.id), "order_class": "bracket",
                    "take_profit": {"limit_price": "180"}, "stop_loss": {"stop_price": "165"}}
    entry.refresh_from_db()
    assert (entry.status, entry.broker_order_id) == ("OPEN", ENTRY)
    legs = leg_orders(entry)
    assert {role: (o.status, o.broker_order_id, o.parent_id, o.side, o.quantity)
            for role, o in legs.items()} == {
        "stop_loss": ("PENDING", SL, entry.id, "SELL", Decimal("10")),
        "take_profit": ("PENDING", TP, entry.id, "SELL", Decimal("10"))}
    assert (legs["stop_loss"].stop_price, legs["take_profit"].limit_price) == (Decimal("165"), Decimal("180"))
    assert {leg.strategy for leg in ExitLeg.objects.filter(entry=entry)} == {"native_bracket"}


def test_a_stop_fill_leaves_the_take_profit_cancelled_and_the_position_flat(venue, alpaca, alpaca_account):
    entry = submit_entry(alpaca_account, alpaca)
    tick(alpaca_account, alpaca)
    assert len(venue.posted()) == 1 and not venue.calls_to("DELETE", ONE_ORDER), "an open entry changes nothing"

    venue.fill(ENTRY, qty="10", price="169.95")
    venue.release_legs()
    tick(alpaca_account, alpaca)
    entry.refresh_from_db()
    assert (entry.status, entry.filled_quantity) == ("FILLED", Decimal("10"))
    assert Fill.objects.get(order=entry).price == Decimal("169.95")
    assert Position.objects.get(account=alpaca_account, symbol="AAPL").quantity == Decimal("10")
    assert {leg.role: leg.status for leg in ExitLeg.objects.filter(entry=entry)} == {
        "stop_loss": "PLACED", "take_profit": "PLACED"}
    assert len(venue.posted()) == 1, "Alpaca releases the legs itself: nothing more is sent"

    venue.fill(SL, qty="10", price="164.98")
    venue.cancel(TP)                               # the bracket's one-cancels-other, done by Alpaca
    tick(alpaca_account, alpaca)
    legs = leg_orders(entry)
    assert (legs["stop_loss"].status, legs["take_profit"].status) == ("FILLED", "CANCELLED")
    assert Fill.objects.get(order=legs["stop_loss"]).price == Decimal("164.98")
    assert Position.objects.get(account=alpaca_account, symbol="AAPL").quantity == 0
    assert {leg.role: (leg.status, leg.end_reason) for leg in ExitLeg.objects.filter(entry=entry)} == {
        "stop_loss": ("FILLED", "filled"), "take_profit": ("CANCELLED", "sibling_filled")}
    assert len(venue.posted()) == 1

    calls = len(venue.mock.calls)
    tick(alpaca_account, alpaca)
    assert len(venue.mock.calls) == calls, "nothing left working: the engine asks Alpaca nothing"


def test_a_take_profit_fill_leaves_the_stop_cancelled(venue, alpaca, alpaca_account):
    entry = submit_entry(alpaca_account, alpaca)
    venue.fill(ENTRY, qty="10", price="170")
    venue.release_legs()
    tick(alpaca_account, alpaca)
    venue.fill(TP, qty="10", price="180.02")
    venue.cancel(SL)
    tick(alpaca_account, alpaca)
    legs = leg_orders(entry)
    assert (legs["stop_loss"].status, legs["take_profit"].status) == ("CANCELLED", "FILLED")
    assert Position.objects.get(account=alpaca_account, symbol="AAPL").quantity == 0


def test_a_bracket_alpaca_refuses_leaves_entry_and_legs_rejected(venue, alpaca, alpaca_account):
    venue.refusal = bracket_error("take_profit_below_base_price")
    with pytest.raises(OrderRejected) as raised:
        submit_entry(alpaca_account, alpaca, order_type="MARKET", limit_price=None, stop_loss="170",
                     take_profit="172.71")
    assert raised.value.status == 422 and "base_price" in raised.value.message
    entry = Order.objects.get(client_order_id="entry-1")
    legs = leg_orders(entry)
    assert [entry.status, legs["stop_loss"].status, legs["take_profit"].status] == ["REJECTED"] * 3
    assert entry.reject_reason == "INVALID_PRICE"
    assert len(venue.posted()) == 1, "a refused bracket is not sent again"


def test_the_api_answers_422_for_a_bracket_alpaca_refuses(venue, alpaca, alpaca_account, monkeypatch):
    monkeypatch.setattr("orders.api.orders.broker_for", lambda account: alpaca)
    venue.refusal = bracket_error("take_profit_below_base_price")
    response = Client().post("/v1/orders", {"symbol": "AAPL", "side": "BUY", "quantity": "10",
                                            "order_type": "MARKET", "stop_loss": "170", "take_profit": "172.71",
                                            "client_order_id": "entry-api"}, content_type="application/json")
    assert response.status_code == 422, response.content
    assert "base_price" in response.json()["message"]
    entry = Order.objects.get(client_order_id="entry-api")
    assert {o.status for o in (entry, *leg_orders(entry).values())} == {"REJECTED"}


def test_a_stop_loss_alone_is_an_oto(venue, alpaca, alpaca_account):
    entry = submit_entry(alpaca_account, alpaca, take_profit=None)
    (body,) = venue.posted()
    assert body["order_class"] == "oto" and body["stop_loss"] == {"stop_price": "165"}
    assert "take_profit" not in body
    legs = leg_orders(entry)
    assert list(legs) == ["stop_loss"] and (legs["stop_loss"].status, legs["stop_loss"].broker_order_id) == (
        "PENDING", SL)


def test_cancelling_a_released_leg_cancels_it_at_alpaca(venue, alpaca, alpaca_account):
    entry = submit_entry(alpaca_account, alpaca)
    venue.fill(ENTRY, qty="10", price="170")
    venue.release_legs()
    tick(alpaca_account, alpaca)
    order_cancel(account=alpaca_account, order_id=str(leg_orders(entry)["stop_loss"].id), broker=alpaca)
    assert venue.order(SL)["status"] == "canceled", "the stop must not keep working at Alpaca"


def test_legs_stay_pending_while_held_and_show_open_once_alpaca_releases_them(venue, alpaca, alpaca_account):
    entry = submit_entry(alpaca_account, alpaca)
    venue.fill(ENTRY, qty="10", price="169.95")
    tick(alpaca_account, alpaca)
    assert {role: o.status for role, o in leg_orders(entry).items()} == {
        "stop_loss": "PENDING", "take_profit": "PENDING"}, "held at Alpaca: not working yet"

    venue.release_legs()
    tick(alpaca_account, alpaca)
    legs = leg_orders(entry)
    assert {role: (o.status, o.broker_order_id) for role, o in legs.items()} == {
        "stop_loss": ("OPEN", SL), "take_profit": ("OPEN", TP)}
    assert len(venue.posted()) == 1, "Alpaca released them: nothing is sent"


def test_a_leg_replaced_at_alpaca_is_followed_to_its_replacement(venue, alpaca, alpaca_account):
    entry = submit_entry(alpaca_account, alpaca)
    venue.fill(ENTRY, qty="10", price="170")
    venue.release_legs()
    tick(alpaca_account, alpaca)
    replacement = venue.replace(TP, limit_price="182")             # moved on Alpaca's site
    tick(alpaca_account, alpaca)
    take_profit = leg_orders(entry)["take_profit"]
    assert (take_profit.status, take_profit.broker_order_id) == ("OPEN", TP), "not a dead leg"

    venue.fill(replacement, qty="10", price="182.01")
    venue.cancel(SL)
    tick(alpaca_account, alpaca)
    legs = leg_orders(entry)
    assert (legs["take_profit"].status, legs["stop_loss"].status) == ("FILLED", "CANCELLED")
    assert Fill.objects.get(order=legs["take_profit"]).price == Decimal("182.01")
    assert Position.objects.get(account=alpaca_account, symbol="AAPL").quantity == 0
