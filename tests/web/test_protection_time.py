"""Time to protection, as the risk desk sees it: how long each filled entry waited for the venue to acknowledge
its exits (p50/p99 over the last hour, each open position's wait), PROTECTION_SLOW raised for a position left
unprotected past the account's limit (before POSITION_UNPROTECTED), and the position flattened past the other
limit. The venue is the paper one: its refusals and its latency are injected faults."""

from __future__ import annotations

from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from orders.models import Alert, AuditEvent, ExitLeg, Order, Position, PreTradeLimits
from orders.services.limits import limits_set
from tests.builders import make_order_request, run_engine
from tests.conftest import FROZEN_AT
from tests.test_metrics import scrape, value
from tests.web.page import parse

pytestmark = pytest.mark.django_db

D = Decimal
COUNT = "desk_time_to_protection_seconds_count"


def enter(account, broker, *, quantity="10"):
    """A MARKET entry with a stop-loss 1 below and a take-profit 3 above the ask (the paper venue places both legs
    once the entry fills)."""
    from orders.services.orders import order_submit
    q = broker.quote("AAPL", now=timezone.now())
    request = make_order_request(quantity=quantity, stop_loss=q.ask - 1, take_profit=q.ask + 3)
    return order_submit(account=account, request=request, broker=broker).order


def protection_card(client):
    page = parse(client.get("/risk/").content)
    return page.by_id("protection")


def rows(card) -> dict[str, str]:
    return {row.attrs["data-symbol"]: row.text for row in card.find_all("tr", class_="protection-row")}


def slow_alerts(account) -> list[Alert]:
    return list(Alert.objects.filter(account=account, kind=Alert.Kind.PROTECTION_SLOW).order_by("raised_at"))


def test_a_filled_entry_records_when_its_legs_were_needed_and_acknowledged_and_counts_once(
        client, risk_client, account, broker, clock):
    before = scrape(client)
    entry = enter(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)
    legs = list(ExitLeg.objects.filter(entry=entry))
    assert len(legs) == 2 and all(leg.status == "PLACED" for leg in legs)
    assert all(leg.needed_at == timezone.now() and leg.acked_at == timezone.now() for leg in legs)
    assert value(scrape(client), COUNT, strategy="pending") == value(before, COUNT, strategy="pending") + 1
    card = protection_card(risk_client)
    assert card.by_id("protection-p50").text == "0 s"
    assert rows(card) == {"AAPL": "AAPL 10 protected after 0 s"}
    assert not slow_alerts(account)


def test_a_refused_stop_raises_protection_slow_after_two_seconds_before_position_unprotected(
        risk_client, account, broker, clock):
    broker.faults.reject_next(100, kind="STOP")
    entry = enter(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)         # filled: the take-profit is placed, the stop refused
    run_engine(account, broker, seconds=1, clock=clock)
    assert not slow_alerts(account)
    run_engine(account, broker, seconds=2, clock=clock)         # 3 s after the fill
    [alert] = slow_alerts(account)
    assert alert.status == "OPEN" and alert.entry_id == entry.pk
    assert "unprotected for 3 s" in alert.message
    assert not Alert.objects.filter(kind=Alert.Kind.POSITION_UNPROTECTED).exists()     # that one comes later
    card = protection_card(risk_client)
    assert rows(card) == {"AAPL": "AAPL 10 unprotected for 3 s"}
    assert "PROTECTION_SLOW" in parse(risk_client.get("/risk/").content).by_id("alerts").text

    broker.faults.clear()                                        # the venue takes the stop again
    for _ in range(10):
        run_engine(account, broker, seconds=2, clock=clock)
        if ExitLeg.objects.filter(entry=entry, acked_at__isnull=True).count() == 0:
            break
    alert.refresh_from_db()
    assert alert.status == "RESOLVED" and alert.resolution.startswith("protected after ")
    card = protection_card(risk_client)
    assert rows(card)["AAPL"].startswith("AAPL 10 protected after ")
    assert card.by_id("protection-count").text == "1"


def test_the_account_sets_how_long_is_slow(account, broker, clock):
    PreTradeLimits.objects.create(account=account, protection_slow_seconds=D("10"))
    broker.faults.reject_next(100, kind="STOP")
    enter(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)
    run_engine(account, broker, seconds=5, clock=clock)
    assert not slow_alerts(account)
    run_engine(account, broker, seconds=6, clock=clock)
    assert len(slow_alerts(account)) == 1


def test_a_position_unprotected_past_the_flatten_limit_is_closed_at_market(account, broker, clock):
    PreTradeLimits.objects.create(account=account, flatten_unprotected_after_seconds=D("5"))
    broker.faults.reject_next(100, kind="STOP")
    enter(account, broker)
    run_engine(account, broker, seconds=1, clock=clock)
    run_engine(account, broker, seconds=3, clock=clock)
    assert Position.objects.get(account=account, symbol="AAPL").quantity == 10
    run_engine(account, broker, seconds=3, clock=clock)         # 6 s unprotected: closed at market
    run_engine(account, broker, seconds=1, clock=clock)
    assert Position.objects.get(account=account, symbol="AAPL").quantity == 0
    audit = AuditEvent.objects.get(action="position.flatten", actor="engine:protection")
    assert "unprotected for 6 s" in audit.details["reason"]


# -- the venue's latency, for real: placing each exit leg waits (``paper_faults --latency-ms N --exits-only``) ------

@pytest.fixture
def running_clock():
    """Time that moves (the venue's latency is a real wait), from the frozen tests' start."""
    with time_machine.travel(FROZEN_AT, tick=True) as traveller:
        yield traveller


def test_a_venue_taking_3_s_per_leg_raises_protection_slow_shown_on_the_risk_view(
        risk_client, account, broker, running_clock):
    entry = enter(account, broker)
    running_clock.shift(1)
    broker.faults.set_latency(3000, exits_only=True)     # the stop, then the take-profit: 6 s
    try:
        run_engine(account, broker)
    finally:
        broker.faults.clear()
    assert ExitLeg.objects.filter(entry=entry, acked_at__isnull=False).count() == 2
    [alert] = slow_alerts(account)
    assert alert.status == "OPEN"                       # nobody could see it wait: left for a person to acknowledge
    assert alert.message.startswith("AAPL protected after 6")
    page = parse(risk_client.get("/risk/").content)
    assert rows(page.by_id("protection"))["AAPL"].startswith("AAPL 10 protected after 6")
    assert page.by_id("protection-p99").text.startswith("6")
    assert "PROTECTION_SLOW" in page.by_id("alerts").text


def test_a_venue_taking_12_s_to_protect_gets_the_position_flattened_when_the_account_says_so(
        risk_client, account, broker, running_clock):
    PreTradeLimits.objects.create(account=account, flatten_unprotected_after_seconds=D("10"))
    enter(account, broker)
    running_clock.shift(1)
    broker.faults.set_latency(6000, exits_only=True)     # the stop, then the take-profit: 12 s
    try:
        run_engine(account, broker)
    finally:
        broker.faults.clear()
    [alert] = slow_alerts(account)
    assert float(alert.details["protected_after_seconds"]) >= 12
    assert alert.details["flattened"].startswith("sent ")
    close = Order.objects.get(pk=alert.details["flattened"].removeprefix("sent "))
    running_clock.shift(1)
    run_engine(account, broker)
    close.refresh_from_db()
    assert close.status == "FILLED"
    assert Position.objects.get(account=account, symbol="AAPL").quantity == 0
    page = parse(risk_client.get("/risk/").content)
    assert page.find(id="protection-none") is not None    # flat: no position waits for exits
    assert "PROTECTION_SLOW" in page.by_id("alerts").text


def test_switching_flattening_on_later_never_flattens_a_position_over_an_old_slow_wait(
        account, broker, running_clock):
    enter(account, broker)
    running_clock.shift(1)
    broker.faults.set_latency(6000, exits_only=True)     # protected after 12 s, with flattening off
    try:
        run_engine(account, broker)
    finally:
        broker.faults.clear()
    [alert] = slow_alerts(account)
    assert float(alert.details["protected_after_seconds"]) >= 12
    running_clock.shift(120)                             # minutes later the risk desk switches flattening on
    limits_set(account_id=account.pk, actor="rita", flatten_unprotected_after_seconds=D("10"))
    run_engine(account, broker)
    alert.refresh_from_db()
    assert "flattened" not in alert.details
    assert Position.objects.get(account=account, symbol="AAPL").quantity == 10
    assert not Order.objects.filter(account=account, leg_role=Order.LegRole.CLOSE).exists()
