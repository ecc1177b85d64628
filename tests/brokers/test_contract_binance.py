"""The broker contract against Binance Spot, served by ``responses`` from payloads built from the spec."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import responses

from orders.brokers.binance import BinanceBroker, BinanceConfig
from orders.brokers.http import HttpClient
from tests.brokers.contract import NOW, BrokerContract, VenueBooksContract

BASE = "https://testnet.binance.vision"
PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str, **changes):
    """A recorded payload (``binance_<area>_<endpoint>.json``), optionally with fields replaced."""
    body = json.loads((PAYLOADS / f"binance_{name}.json").read_text())
    if changes:
        body.update(changes)
    return body


def error(name: str) -> dict:
    """``responses.add`` keyword arguments for a recorded Binance error."""
    case = payload("errors_rest")[name]
    return {"status": case["status"], "json": case["body"], "headers": case.get("headers", {})}


class TestBinanceContract(VenueBooksContract, BrokerContract):
    symbol = "BTCUSDT"
    quantity = Decimal("0.001")

    @pytest.fixture(autouse=True)
    def _venue(self):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            rsps.get(f"{BASE}/api/v3/time", json=payload("market_time"))
            rsps.get(f"{BASE}/api/v3/exchangeInfo", json=payload("market_exchangeinfo"))
            self.rsps = rsps
            yield

    def make_broker(self):
        config = BinanceConfig(api_key="contract-key", api_secret="contract-secret", base_url=BASE)
        http = HttpClient(base_url=BASE, provider="binance_spot", sleep=lambda seconds: None)
        return BinanceBroker(config, http=http, clock=NOW.timestamp)

    def stage_quote(self, broker):
        self.rsps.get(f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"))

    def limit_price(self, broker):
        return Decimal("60000.00")

    def stage_submit(self, broker, ticket):
        self.rsps.post(f"{BASE}/api/v3/order", json=payload("trade_order_new", clientOrderId=ticket.order_id))

    def stage_rejection_for_funds(self, broker, ticket):
        self.rsps.post(f"{BASE}/api/v3/order", **error("insufficient_balance"))

    def stage_cancel(self, broker, ticket):
        self.rsps.delete(f"{BASE}/api/v3/order", json=payload("trade_order_cancel", origClientOrderId=ticket.order_id))

    def stage_still_open(self, broker, order):
        self.rsps.get(f"{BASE}/api/v3/order", json=payload("trade_order_query", clientOrderId=order.order_id))

    def stage_filled(self, broker, order, *, price):
        self.rsps.get(f"{BASE}/api/v3/order", json=payload(
            "trade_order_query", clientOrderId=order.order_id, status="FILLED", executedQty="0.00100000",
            cummulativeQuoteQty="59.99999400", isWorking=False))
        self.rsps.get(f"{BASE}/api/v3/myTrades", json=payload("trade_mytrades"))
        return order

    def stage_outage(self, broker):
        self.rsps.get(f"{BASE}/api/v3/ticker/bookTicker", **error("unavailable"))

    # -- the venue's truth, through the interface only (Binance's part of issue #13) ---------------------------
    def stage_account(self) -> None:
        self.rsps.get(f"{BASE}/api/v3/account", json=payload("account_get"))
        self.rsps.get(f"{BASE}/api/v3/ticker/price", json=payload("market_ticker_price"))

    def stage_open_orders(self):
        self.rsps.get(f"{BASE}/api/v3/openOrders", json=payload("open_orders"))

    def check_figures(self, figures):
        assert figures.margin_used == 0 and figures.margin_available == figures.buying_power <= figures.cash
