"""Every metric PROTOCOL.md §12.2 names is on /metrics from the first scrape (declared; its series once recorded),
and each is recorded where its event happens: the paper venue is driven through each order event, a double exit,
an outage and its end, a breaker reset; a venue's rate limits go through the HTTP seam every real broker uses; a
critical alert committed with nobody listening is counted as dropped, one with a page open is not."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import responses
from channels.db import database_sync_to_async
from django.db import transaction

from orders.brokers.http import HttpClient
from orders.domain.enums import TimeInForce
from orders.domain.errors import DeskError
from orders.engine import BrokerLink, engine_tick
from orders.events import ORDER_EVENT_TYPES
from orders.services.breakers import breakers_reset
from orders.services.orders import OrderChanges, order_cancel, order_modify
from tests.builders import make_account, run_engine
from tests.exits.conftest import legs, quote, shock, submit, use_profile
from tests.test_metrics import scrape, value
from tests.web.support import logged_in, make_user, place, raise_alert, resting_limit
from tests.web.test_desk_socket import opened

# PROTOCOL.md §12.2, as its table names them
PROTOCOL = {
    "gateway_orders_submitted_total": "counter", "gateway_order_submit_duration_seconds": "histogram",
    "gateway_order_events_total": "counter", "gateway_oco_double_exit_total": "counter",
    "gateway_critical_notifications_dropped_total": "counter", "gateway_ws_connections_active": "gauge",
    "gateway_ws_slow_consumer_disconnects": "counter", "gateway_broker_disconnections_total": "counter",
    "gateway_broker_reconnect_attempts_total": "counter", "gateway_broker_reconnections_total": "counter",
    "gateway_broker_reconnect_failures_total": "counter", "gateway_rate_limit_events_total": "counter",
    "gateway_circuit_breaker_resets_total": "counter", "gateway_backtest_completions_total": "counter",
}
EVENT_TYPES = ("created", "modified", "cancelled", "rejected", "filled", "partially_filled", "expired",
               "bracket_created", "bracket_modified")


def grew(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_every_metric_the_protocol_names_is_declared_on_the_scrape_with_its_type(client):
    text = client.get("/metrics").content.decode()

    for name, kind in PROTOCOL.items():
        assert f"# TYPE {name} {kind}\n" in text, name
        assert len(re.findall(rf"^# TYPE {name} ", text, re.MULTILINE)) == 1, f"{name} declared twice"


def test_every_order_event_of_the_protocol_has_its_label():
    assert sorted(ORDER_EVENT_TYPES.values()) == sorted(EVENT_TYPES)


# -- order events, through the paper venue ------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_each_order_event_through_the_paper_venue_is_counted_with_its_platform_and_type(client, account, broker,
                                                                                        clock):
    before = scrape(client)

    working = resting_limit(account, broker)                                         # ORDER_CREATED
    order_modify(account=account, order_id=str(working.pk), broker=broker,
                 changes=OrderChanges(limit_price=working.limit_price - Decimal("1")))  # ORDER_MODIFIED
    order_cancel(account=account, order_id=str(working.pk), broker=broker)           # ORDER_CANCELLED
    place(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)                              # ORDER_FILLED
    whale = make_account(name="whale", cash=Decimal("10000000"))
    place(whale, broker, quantity=3000)
    run_engine(whale, broker, clock=clock)                                           # ORDER_PARTIALLY_FILLED
    resting_limit(account, broker, time_in_force=TimeInForce.DAY)
    run_engine(account, broker, seconds=int(timedelta(days=1).total_seconds()), clock=clock)   # ORDER_EXPIRED

    after = scrape(client)
    counted = {kind: grew(before, after, "gateway_order_events_total", platform="paper", event_type=kind)
               for kind in EVENT_TYPES}
    assert counted["created"] >= 4 and counted["filled"] >= 1 and counted["partially_filled"] >= 1
    assert {kind: counted[kind] for kind in ("modified", "cancelled", "expired")} == {
        "modified": 1, "cancelled": 1, "expired": 1}


@pytest.mark.django_db(transaction=True)
def test_an_order_a_venue_refuses_is_counted_as_rejected_under_its_platform(client, clock):
    """The paper venue refuses before an order exists (the API answers 4xx, nothing is recorded); a real venue
    refuses one the desk has recorded: here the fake Alpaca on 127.0.0.1, answering the next order 422."""
    from tests.brokers.test_alpaca_fake import make_broker
    from tests.fakes import FakeVenue

    with FakeVenue("alpaca", "--cash", "250000") as fake:
        alpaca = make_broker(fake)
        us = make_account(name="us-stocks", broker="alpaca", cash=Decimal("0"))
        fake.control("fail", status=422, count=1, path="/v2/orders")
        before = scrape(client)

        with pytest.raises(DeskError):
            place(us, alpaca, quantity=1)

    assert grew(before, scrape(client), "gateway_order_events_total", platform="alpaca", event_type="rejected") == 1


@pytest.mark.django_db(transaction=True)
def test_a_native_brackets_held_legs_are_counted_as_bracket_created(client, account, settings, clock):
    broker = use_profile(settings, "native_bracket")
    before = scrape(client)

    bid = quote(client)["bid"]
    submit(client, side="BUY", stop_loss=bid - 5, take_profit=bid + 5)
    run_engine(account, broker, seconds=1, clock=clock)

    assert grew(before, scrape(client), "gateway_order_events_total", platform="paper",
                event_type="bracket_created") == 2


@pytest.mark.django_db(transaction=True)
def test_an_order_event_rolled_back_is_not_counted(client, account, broker):
    before = scrape(client)

    with pytest.raises(RuntimeError), transaction.atomic():
        resting_limit(account, broker)
        raise RuntimeError("the transaction around it fails")

    assert grew(before, scrape(client), "gateway_order_events_total", platform="paper", event_type="created") == 0


# -- exits, the venue's link, breakers ----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_both_exits_filling_counts_one_oco_double_exit(client, account, settings, clock):
    broker = use_profile(settings, "none")
    before = scrape(client)

    bid = quote(client)["bid"]
    entry = submit(client, side="BUY", stop_loss=bid, take_profit=quote(client)["ask"] + 1)["id"]
    run_engine(account, broker, clock=clock)
    shock(broker, "5", after=10)
    run_engine(account, broker, seconds=30, clock=clock)
    for _ in range(3):
        run_engine(account, broker, seconds=1, clock=clock)

    assert [o.status for o in legs(entry)["take_profit"]] == ["FILLED"]
    assert grew(before, scrape(client), "gateway_oco_double_exit_total", platform="paper") == 1


@pytest.mark.django_db(transaction=True)
def test_an_outage_of_the_venue_and_its_end_are_counted(client, account, broker, clock):
    link = BrokerLink()
    before = scrape(client)

    broker.faults.set_unavailable(True)
    for _ in range(3):                     # down, then two polls that find it still down
        engine_tick(accounts=[account], broker=broker, link=link)
    broker.faults.set_unavailable(False)
    engine_tick(accounts=[account], broker=broker, link=link)       # back

    after = scrape(client)
    assert {name: grew(before, after, f"gateway_broker_{name}_total", platform="paper") for name in (
        "disconnections", "reconnect_attempts", "reconnect_failures", "reconnections")} == {
        "disconnections": 1, "reconnect_attempts": 3, "reconnect_failures": 2, "reconnections": 1}


@pytest.mark.django_db
def test_a_successful_breaker_reset_is_counted_under_the_protocols_unlabelled_name(client, account):
    before = client.get("/metrics").content.decode()
    breakers_reset(account=account, actor="user:rita")
    after = client.get("/metrics").content.decode()

    def resets(text: str) -> float:
        found = re.search(r"^gateway_circuit_breaker_resets_total (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    assert resets(after) == resets(before) + 1
    with pytest.raises(DeskError):
        breakers_reset(account=account, actor="user:rita")           # within the cooldown: refused, not counted
    assert resets(client.get("/metrics").content.decode()) == resets(after)


# -- a venue's rate limits ----------------------------------------------------------------------------------------

@responses.activate
def test_a_venue_answering_429_counts_a_hit_per_answer(client):
    responses.get("https://venue.test/v2/orders", status=429, headers={"Retry-After": "0"})
    responses.get("https://venue.test/v2/orders", status=200, json=[])
    http = HttpClient(base_url="https://venue.test", provider="alpaca", sleep=lambda seconds: None)
    before = scrape(client)

    assert http.request("GET", "/v2/orders").status == 200                 # retried after the 429

    after = scrape(client)
    assert grew(before, after, "gateway_rate_limit_events_total", platform="alpaca", event_type="hit") == 1


@responses.activate
def test_the_desk_holding_a_request_back_for_the_venues_budget_counts_a_warning(client):
    from tests.brokers.test_binance import BASE, NOW, make_broker, payload

    responses.get(f"{BASE}/api/v3/time", json=payload("market_time"))
    responses.get(f"{BASE}/api/v3/exchangeInfo", json=payload("market_exchangeinfo"))
    responses.get(f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"),
                  headers={"x-mbx-used-weight-1m": "5399"})
    binance = make_broker()
    before = scrape(client)

    binance.quote("BTCUSDT", now=NOW)                    # 5399 of the 5400 budget used after it
    with pytest.raises(DeskError):
        binance.quote("BTCUSDT", now=NOW)                # held back, never sent

    after = scrape(client)
    assert grew(before, after, "gateway_rate_limit_events_total", platform="binance_spot", event_type="warning") == 1
    assert grew(before, after, "gateway_rate_limit_events_total", platform="binance_spot", event_type="hit") == 0


# -- critical alerts nobody hears ---------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_critical_alert_with_no_socket_open_is_counted_as_dropped_and_one_heard_is_not(client, account):
    risk = await database_sync_to_async(lambda: logged_in(make_user("rita", "risk")))()
    before = await database_sync_to_async(scrape)(client)

    page = await opened(risk, path="/ws/desk/?view=risk&account=alice")
    await database_sync_to_async(raise_alert)(account, symbol="AAPL", key="heard")
    heard = await database_sync_to_async(scrape)(client)
    await page.disconnect()
    await database_sync_to_async(raise_alert)(account, symbol="MSFT", key="unheard")
    unheard = await database_sync_to_async(scrape)(client)

    assert grew(before, heard, "gateway_critical_notifications_dropped_total", platform="paper") == 0
    assert grew(heard, unheard, "gateway_critical_notifications_dropped_total", platform="paper") == 1
