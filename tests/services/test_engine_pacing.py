"""The engine polls a remote venue no more often than the venue's request budget allows (at once when the
venue's stream asks), and the paper venue on every tick. Between polls the tick still does what the database
alone decides: leg retries, escalations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.brokers.alpaca.broker import AlpacaBroker
from orders.brokers.binance.broker import BinanceBroker
from orders.brokers.kraken.broker import KrakenBroker
from orders.brokers.paper import PaperBroker
from orders.engine import PollPacer, engine_tick
from orders.models import Alert, Order
from orders.services.alerts import alert_raise
from orders.services.orders import order_submit
from tests.builders import make_order_request


def test_a_pacer_polls_first_then_once_per_interval():
    pacer = PollPacer(2.0)

    assert [pacer.due(t) for t in (100.0, 100.5, 101.9, 102.0, 103.0, 104.1)] == [
        True, False, False, True, False, True]


def test_a_stream_event_polls_at_once_and_restarts_the_interval():
    pacer = PollPacer(2.0)
    pacer.due(100.0)

    assert pacer.due(100.3, woken=True)
    assert not pacer.due(102.0)
    assert pacer.due(102.3)


def test_no_interval_polls_every_tick():
    pacer = PollPacer(0.0)

    assert all(pacer.due(t) for t in (1.0, 1.0, 1.25))


@pytest.mark.parametrize(("broker", "at_least"), [(AlpacaBroker, 1.0), (BinanceBroker, 1.0), (KrakenBroker, 3.0)])
def test_remote_brokers_are_polled_within_their_request_budgets(broker, at_least):
    assert broker.poll_seconds >= at_least
    assert PaperBroker.poll_seconds == 0


@pytest.mark.django_db
def test_a_tick_without_a_poll_leaves_the_venue_alone(account, broker, clock):
    order = order_submit(account=account, request=make_order_request(quantity=1), broker=broker).order
    clock.shift(2)

    engine_tick(accounts=[account], broker=broker, now=timezone.now(), poll=False)
    assert Order.objects.get(pk=order.pk).status == "OPEN"           # not matched: no sync

    engine_tick(accounts=[account], broker=broker, now=timezone.now(), poll=True)
    assert Order.objects.get(pk=order.pk).status == "FILLED"


@pytest.mark.django_db
def test_a_tick_without_a_poll_still_escalates_alerts(account, broker, clock, settings):
    settings.DESK_ALERT_ESCALATE_MINUTES = 5
    alert = alert_raise(account_id=account.pk, kind=Alert.Kind.POSITION_UNPROTECTED, symbol="AAPL",
                        dedupe_key="k", message="AAPL is not protected", details={})

    engine_tick(accounts=[account], broker=broker, now=timezone.now() + timedelta(minutes=6), poll=False)

    assert Alert.objects.get(pk=alert.pk).escalated_at is not None
