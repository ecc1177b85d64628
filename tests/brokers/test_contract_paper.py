"""The broker contract against the paper venue."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from orders.brokers.catalogue import load_catalogue
from orders.brokers.paper import PaperBroker, PaperConfig
from orders.domain.enums import Side
from orders.domain.errors import OrderRejected
from tests.brokers.contract import BrokerContract


class TestPaperContract(BrokerContract):
    @pytest.fixture(autouse=True)
    def _fault_file(self, tmp_path):
        self.fault_file = str(tmp_path / "faults.json")

    def make_broker(self):
        return PaperBroker(PaperConfig(seed=7, instruments=load_catalogue(), fault_file=self.fault_file))

    def limit_price(self, broker):
        return (broker.quote(self.symbol, now=self.now()).bid * Decimal("0.9")).quantize(Decimal("0.01"))

    def stage_rejection_for_funds(self, broker, ticket):
        broker.faults.reject_next(1, kind=ticket.order_type, reason="INSUFFICIENT_BALANCE")

    def stage_filled(self, broker, order, *, price):
        ask = broker.quote(self.symbol, now=self.now()).ask
        return replace(order, side=Side.BUY, limit_price=ask + 1)      # marketable: the venue fills it

    def stage_outage(self, broker):
        broker.faults.set_unavailable(True)


def test_the_paper_rejection_hook_really_rejects(tmp_path):
    broker = PaperBroker(PaperConfig(seed=7, instruments=load_catalogue(), fault_file=str(tmp_path / "f.json")))
    case = TestPaperContract()
    case.fault_file = str(tmp_path / "f.json")
    ticket = case.ticket(broker)
    case.stage_rejection_for_funds(broker, ticket)
    with pytest.raises(OrderRejected):
        broker.submit_order(ticket)
