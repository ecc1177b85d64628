"""The broker contract against Alpaca, every reply served by ``responses`` from recorded payloads."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from responses import matchers

from orders.brokers.alpaca import AlpacaBroker, AlpacaConfig
from orders.brokers.http import RetryPolicy
from orders.domain.enums import OrderStatus
from tests.brokers.contract import BrokerContract, VenueBooksContract

PAYLOADS = Path(__file__).parent / "payloads"
TRADING = "https://paper-api.alpaca.markets"
DATA = "https://data.alpaca.markets"


def payload(name: str):
    return json.loads((PAYLOADS / f"alpaca_{name}.json").read_text())


def alpaca_order(client_order_id: str, **changes) -> dict:
    """The spec's equity order example, as Alpaca would show our order."""
    return {**payload("orders_post"), "client_order_id": client_order_id, "qty": "1", **changes}


class TestAlpacaContract(VenueBooksContract, BrokerContract):
    @pytest.fixture(autouse=True)
    def _venue(self):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            self.venue = mock
            yield

    def make_broker(self):
        config = AlpacaConfig(api_key="PKTEST", api_secret="contract-secret", base_url=TRADING, data_url=DATA)
        return AlpacaBroker(config, sleep=lambda seconds: None, retry=RetryPolicy(attempts=2))

    def stage_quote(self, broker):
        self.venue.get(f"{DATA}/v2/stocks/AAPL/quotes/latest", json=payload("marketdata_stocks_quotes_latest"))

    def limit_price(self, broker):
        return Decimal("150")

    def stage_submit(self, broker, ticket):
        wire = {"symbol": "AAPL", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "gtc",
                "limit_price": "150", "client_order_id": ticket.order_id}
        self.venue.post(f"{TRADING}/v2/orders", json=alpaca_order(ticket.order_id),
                        match=[matchers.json_params_matcher(wire)])

    def stage_rejection_for_funds(self, broker, ticket):
        case = payload("orders_errors")["insufficient_buying_power"]
        self.venue.post(f"{TRADING}/v2/orders", status=case["status"], json=case["body"])

    def stage_cancel(self, broker, ticket):
        order = alpaca_order(ticket.order_id, status="new")
        self.venue.get(f"{TRADING}/v2/orders:by_client_order_id", json=order,
                       match=[matchers.query_param_matcher({"client_order_id": ticket.order_id})])
        self.venue.delete(f"{TRADING}/v2/orders/{order['id']}", status=204)

    def stage_still_open(self, broker, order):
        self.venue.get(f"{TRADING}/v2/orders", json=[alpaca_order(order.order_id, status="new")])

    def stage_filled(self, broker, order, *, price):
        filled = alpaca_order(order.order_id, status="filled", filled_qty="1", filled_avg_price=str(price),
                              filled_at="2026-03-02T15:00:00.5Z")
        self.venue.get(f"{TRADING}/v2/orders", json=[filled])
        return order

    def stage_outage(self, broker):
        self.venue.get(f"{DATA}/v2/stocks/AAPL/quotes/latest", status=503, body="upstream unavailable")

    # -- the venue's truth, through the interface only (Alpaca's part of issue #13) --------------------------------
    working_statuses = (OrderStatus.PENDING, OrderStatus.OPEN)

    def stage_account(self):
        self.venue.get(f"{TRADING}/v2/account", json=payload("account_get"))
        self.venue.get(f"{TRADING}/v2/positions", json=payload("positions_get"))

    def stage_open_orders(self):
        self.venue.get(f"{TRADING}/v2/orders", json=payload("orders_get_open"))

    def check_figures(self, figures):
        assert figures.margin_available == figures.equity - figures.margin_used
