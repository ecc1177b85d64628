"""The broker contract against Kraken Spot, every answer a recorded Kraken payload served by ``responses``
(see ``tests/brokers/test_kraken.py`` for the fake venue and where the payloads come from).

Each contract test builds a fresh broker, so ``sync`` finds orders the way an engine process that did not send
them does: by ``cl_ord_id`` in ``OpenOrders``, then ``ClosedOrders``."""

from __future__ import annotations

from decimal import Decimal

import pytest
import responses

from orders.domain.errors import ProviderUnavailable
from tests.brokers.contract import BrokerContract, VenueBooksContract
from tests.brokers.test_kraken import (
    KrakenVenue,
    answer,
    envelope,
    kraken_order,
    kraken_trade,
    make_kraken,
    payload,
)

CLOSED_TXID = "OBCMZD-JIEE7-77TH3F"


class TestKrakenContract(VenueBooksContract, BrokerContract):
    symbol = "XBTUSD"
    quantity = Decimal("0.01")

    @pytest.fixture(autouse=True)
    def _venue(self):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            self.venue = KrakenVenue(mock)
            yield

    def make_broker(self):
        return make_kraken()

    def stage_quote(self, broker):
        self.venue.stage("Ticker", payload("public_ticker"))

    def limit_price(self, broker):
        return Decimal("3000.0")          # below the recorded ticker (bid 3537.4): rests without filling

    def stage_submit(self, broker, ticket):
        self.venue.stage("AddOrder", payload("trading_addorder"))

    def stage_rejection_for_funds(self, broker, ticket):
        self.venue.stage("AddOrder", envelope("EOrder:Insufficient funds"))

    def stage_cancel(self, broker, ticket):
        self.venue.stage("CancelOrder", payload("trading_cancelorder"))

    def stage_still_open(self, broker, order):
        recorded = payload("user_openorders")
        recorded["result"]["open"]["OQCLML-BW3P3-BUCMWZ"] = kraken_order(
            cl_ord_id=order.order_id, status="open", vol=str(order.quantity), price=str(order.limit_price))
        self.venue.stage("OpenOrders", recorded)

    def stage_filled(self, broker, order, *, price):
        self.venue.stage("OpenOrders", answer({"open": {}}))
        self.venue.stage("ClosedOrders", answer({"closed": {CLOSED_TXID: kraken_order(
            cl_ord_id=order.order_id, status="closed", vol=str(order.quantity), vol_exec=str(order.quantity),
            price=str(price), trades=("TZX2WP-XSEOP-FP7WYR",), closetm=1772463700.0)}, "count": 1}))
        self.venue.stage("QueryTrades", answer({"TZX2WP-XSEOP-FP7WYR": kraken_trade(
            ordertxid=CLOSED_TXID, vol=str(order.quantity), price=str(price))}))
        return order

    def stage_outage(self, broker):
        self.venue.stage("Ticker", (503, "<html>503 Service Temporarily Unavailable</html>"))

    # -- the venue's truth, through the interface only (Kraken's part of issue #13) ----------------------------
    def stage_account(self) -> None:
        self.venue.stage("BalanceEx", payload("user_balanceex"))
        self.venue.stage("TradeBalance", payload("user_tradebalance"))

    def stage_open_orders(self):
        self.venue.stage("OpenOrders", payload("user_openorders"))

    def check_figures(self, figures):
        assert figures.margin_used == 0 and figures.margin_available == figures.buying_power <= figures.cash

    def test_one_balance_backs_one_resting_exit_and_the_switch_is_kraken_s(self):
        broker = self.make_broker()
        assert broker.one_resting_exit and broker.deadman_seconds > 0
        broker.arm_deadman(seconds=broker.deadman_seconds)
        assert self.venue.calls_to("CancelAllOrdersAfter")[0].fields["timeout"] == str(broker.deadman_seconds)


class TestKrakenContractWhenKrakenSaysItIsUnavailable(TestKrakenContract):
    """The same contract, the outage this time reported Kraken's way: HTTP 200 with ``EService:Unavailable``."""

    def stage_outage(self, broker):
        self.venue.stage("Ticker", envelope("EService:Unavailable"))

    def test_the_outage_is_provider_unavailable(self):
        broker = self.make_broker()
        self.stage_outage(broker)
        with pytest.raises(ProviderUnavailable):
            broker.quote(self.symbol, now=self.now())
