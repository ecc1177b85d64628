"""A filled entry whose protective leg cannot be placed: retried with backoff, escalated to a
POSITION_UNPROTECTED alert after RETRY_WINDOW, resolved when protection returns or the position goes
flat, acknowledged by a person, optionally auto-flattened; the exit-order circuit breaker defers
placement after repeated infrastructure failures (PROTOCOL §8.3, §8.6, §8.8; placing-orders "Atomicity")."""

from __future__ import annotations

import pytest

from orders.exits.decide import RETRY_WINDOW
from orders.models import Alert, AuditEvent, Event, ExitLeg, Order
from tests.exits.conftest import (
    D,
    J,
    exit_leg,
    legs,
    position_quantity,
    submit_bracket,
    tick,
    use_profile,
)

pytestmark = pytest.mark.django_db
WINDOW = int(RETRY_WINDOW.total_seconds())


@pytest.fixture
def broker(settings, account):
    return use_profile(settings, "none")


def _unprotected() -> list[Alert]:
    return list(Alert.objects.filter(kind="POSITION_UNPROTECTED"))


def _error_events(code: str = "POSITION_UNPROTECTED") -> list[Event]:
    return [e for e in Event.objects.filter(kind="error") if e.payload["code"] == code]


def _fill_with_stop_refused(client, account, broker, clock, *, refusals: int) -> str:
    broker.faults.reject_next(refusals, kind="STOP", reason="UNKNOWN", message="stop refused by injected fault")
    entry_id = submit_bracket(client, client_order_id="e-1")["id"]
    tick(account, broker, clock, 0)
    assert position_quantity(account) == 10
    return entry_id


def test_a_refused_stop_leg_is_retried_with_backoff_and_placed_once_the_venue_accepts_it(
        client, account, broker, clock):
    entry_id = _fill_with_stop_refused(client, account, broker, clock, refusals=3)
    assert exit_leg(entry_id, "stop_loss").status == "RETRYING"
    assert exit_leg(entry_id, "take_profit").status == "PLACED", "the sibling is not held back"
    seen = []
    for _ in range(3):
        tick(account, broker, clock, 1)
        leg = exit_leg(entry_id, "stop_loss")
        seen.append((leg.status, leg.attempts))
    # refused at the fill, 1 s and 2 s later; the fourth attempt (due 1 s after the third) goes through
    assert seen == [("RETRYING", 2), ("RETRYING", 3), ("PLACED", 3)]
    leg = exit_leg(entry_id, "stop_loss")
    assert leg.status == "PLACED" and leg.last_error == ""
    [stop] = legs(entry_id)["stop_loss"]
    assert (stop.status, stop.client_order_id, stop.quantity) == ("OPEN", "e-1-sl", D(10))
    assert not _unprotected() and not _error_events()


def test_five_refusals_are_outlasted_within_the_retry_window_without_an_alert(client, account, broker, clock):
    entry_id = _fill_with_stop_refused(client, account, broker, clock, refusals=5)
    for _ in range(WINDOW):
        tick(account, broker, clock, 1)
    leg = exit_leg(entry_id, "stop_loss")
    assert (leg.status, leg.attempts) == ("PLACED", 5)
    assert [o.client_order_id for o in legs(entry_id)["stop_loss"]] == ["e-1-sl"]
    assert not _unprotected() and not _error_events()


def test_a_short_venue_outage_while_retrying_is_outlasted_without_an_alert(client, account, broker, clock):
    entry_id = _fill_with_stop_refused(client, account, broker, clock, refusals=1)
    broker.faults.set_unavailable(True)
    tick(account, broker, clock, 1)
    tick(account, broker, clock, 1)
    assert exit_leg(entry_id, "stop_loss").status == "RETRYING"
    broker.faults.set_unavailable(False)
    for _ in range(3):
        tick(account, broker, clock, 1)
    assert exit_leg(entry_id, "stop_loss").status == "PLACED"
    assert not _unprotected()
    assert client.get("/v1/circuit-breakers").json()["exit_order"] == {"state": "closed", "failure_count": 2}


def test_backoff_spaces_out_attempts_and_the_alert_comes_after_the_retry_window(client, account, broker, clock):
    entry_id = _fill_with_stop_refused(client, account, broker, clock, refusals=1000)
    seen = {}
    for second in range(1, WINDOW + 1):
        tick(account, broker, clock, 1)
        seen[second] = exit_leg(entry_id, "stop_loss").attempts
        if second < WINDOW:
            assert not _unprotected(), f"alert raised after {second} s, before the retry window ran out"
    # delays 0.1, 0.3, 1, 2, 5 s between attempts: retried at 1, 2, 3, 5 and 10 s
    assert [seen[s] for s in (1, 2, 3, 4, 5, 9, 10)] == [2, 3, 4, 4, 5, 5, 6]
    [alert] = _unprotected()
    assert alert.status == "OPEN" and alert.symbol == "AAPL"
    assert str(alert.entry_id) == entry_id
    assert alert.details["order_id"] == entry_id
    assert alert.details["symbol"] == "AAPL"
    assert alert.details["circuit_breaker_open"] is False
    [failed] = alert.details["failed_exits"]
    assert failed["type"] == "StopLoss" and "refused" in failed["error"]
    assert exit_leg(entry_id, "stop_loss").status == "FAILED"
    [event] = _error_events()
    assert event.payload["details"]["alert_id"] == str(alert.id)
    assert "unprotected" in event.payload["message"]


def test_one_alert_per_entry_however_many_ticks(client, account, broker, clock):
    entry_id = _fill_with_stop_refused(client, account, broker, clock, refusals=1000)
    for _ in range(40):
        tick(account, broker, clock, 1)
    assert len(_unprotected()) == 1
    assert len(_error_events()) == 1
    assert exit_leg(entry_id, "stop_loss").attempts > 6, "still retrying after the alert"


def test_the_early_protection_slow_warning_gives_way_to_the_unprotected_alarm_and_is_not_raised_again(
        client, account, broker, clock):
    _fill_with_stop_refused(client, account, broker, clock, refusals=1000)
    for _ in range(3):
        tick(account, broker, clock, 1)
    [slow] = Alert.objects.filter(kind="PROTECTION_SLOW")
    assert slow.status == "OPEN" and not _unprotected()          # 3 s without its stop: the early warning

    for _ in range(WINDOW + 5):
        tick(account, broker, clock, 1)

    slow.refresh_from_db()
    assert (slow.status, slow.resolution) == ("RESOLVED", "superseded by POSITION_UNPROTECTED: its retries are spent")
    assert [a.kind for a in Alert.objects.exclude(status="RESOLVED")] == ["POSITION_UNPROTECTED"]   # one on screen
    assert Alert.objects.filter(kind="PROTECTION_SLOW").count() == 1, "the same wait is not warned about again"


def test_when_the_fault_clears_later_the_leg_is_placed_and_the_alert_resolved(client, account, broker, clock):
    entry_id = _fill_with_stop_refused(client, account, broker, clock, refusals=1000)
    for _ in range(WINDOW + 2):
        tick(account, broker, clock, 1)
    [alert] = _unprotected()
    assert alert.status == "OPEN"

    broker.faults.clear()
    for _ in range(6):
        tick(account, broker, clock, 1)

    alert.refresh_from_db()
    assert alert.status == "RESOLVED" and alert.resolved_at is not None
    assert exit_leg(entry_id, "stop_loss").status == "PLACED"
    assert [o.client_order_id for o in legs(entry_id)["stop_loss"]] == ["e-1-sl"]
    assert position_quantity(account) == 10


def test_a_position_that_goes_flat_resolves_its_unprotected_alert(client, account, broker, clock):
    entry_id = _fill_with_stop_refused(client, account, broker, clock, refusals=1000)
    for _ in range(WINDOW + 1):
        tick(account, broker, clock, 1)
    [alert] = _unprotected()

    assert client.delete("/v1/positions/AAPL").status_code == 200

    alert.refresh_from_db()
    assert alert.status == "RESOLVED" and alert.resolution == "position flat"
    assert position_quantity(account) == 0
    assert {leg.status for leg in ExitLeg.objects.filter(entry_id=entry_id)} == {"CANCELLED"}
    for _ in range(8):
        tick(account, broker, clock, 1)
    assert not Order.objects.filter(parent_id=entry_id, status="OPEN").exists(), "no leg placed for a flat position"
    assert len(_unprotected()) == 1


def test_a_position_taken_through_zero_resolves_the_alert_of_the_side_it_left(client, account, broker, clock):
    long_entry = _fill_with_stop_refused(client, account, broker, clock, refusals=1000)
    for _ in range(WINDOW + 1):
        tick(account, broker, clock, 1)
    [alert] = _unprotected()
    broker.faults.clear()

    submit_bracket(client, side="SELL", quantity="20", client_order_id="flip-1")
    tick(account, broker, clock, 1)

    assert position_quantity(account) == -10
    alert.refresh_from_db()
    assert alert.status == "RESOLVED"
    assert {leg.status for leg in ExitLeg.objects.filter(entry_id=long_entry)} == {"CANCELLED"}
    for _ in range(6):
        tick(account, broker, clock, 1)
    assert not Order.objects.filter(parent_id=long_entry, status="OPEN").exists()
    assert len(_unprotected()) == 1


def test_acknowledging_an_alert_records_who_when_and_why(client, account, broker, clock):
    _fill_with_stop_refused(client, account, broker, clock, refusals=1000)
    for _ in range(WINDOW + 1):
        tick(account, broker, clock, 1)
    [alert] = _unprotected()

    empty = client.post(f"/v1/alerts/{alert.id}/acknowledge", {"comment": "  "}, content_type=J)
    assert empty.status_code == 400
    alert.refresh_from_db()
    assert alert.status == "OPEN"

    response = client.post(f"/v1/alerts/{alert.id}/acknowledge", {"comment": "calling the broker desk"},
                           content_type=J)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ACKNOWLEDGED"
    assert body["acknowledged_by"] == "keyless"
    assert body["comment"] == "calling the broker desk"
    assert body["acknowledged_at"]
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by, alert.ack_comment) == (
        "ACKNOWLEDGED", "keyless", "calling the broker desk")
    assert AuditEvent.objects.filter(action="alert.acknowledge", target=str(alert.id), actor="keyless").exists()
    listed = client.get("/v1/alerts").json()       # (its PROTECTION_SLOW, raised 2 s after the fill, is listed too)
    assert [a["id"] for a in listed if a["kind"] == "POSITION_UNPROTECTED"] == [str(alert.id)]

    missing = client.post("/v1/alerts/00000000-0000-0000-0000-000000000000/acknowledge", {"comment": "x"},
                          content_type=J)
    assert missing.status_code == 404


def test_auto_flatten_closes_a_position_left_unprotected_for_the_configured_time(client, account, broker, clock):
    account.auto_flatten_after_seconds = 5
    account.save(update_fields=["auto_flatten_after_seconds"])
    _fill_with_stop_refused(client, account, broker, clock, refusals=1000)
    for _ in range(WINDOW):
        tick(account, broker, clock, 1)
    [alert] = _unprotected()
    for _ in range(4):
        tick(account, broker, clock, 1)
        assert position_quantity(account) == 10, "flattened before the grace period ran out"
    tick(account, broker, clock, 1)

    assert position_quantity(account) == 0
    alert.refresh_from_db()
    assert alert.status == "RESOLVED"
    flatten = AuditEvent.objects.get(action="position.flatten", actor="engine:auto-flatten")
    assert flatten.target == "AAPL" and flatten.result == "ok"
    close = Order.objects.get(leg_role="close")
    assert (close.status, close.side, close.quantity) == ("FILLED", "SELL", D(10))


def test_without_the_policy_an_unprotected_position_is_left_to_the_desk(client, account, broker, clock):
    _fill_with_stop_refused(client, account, broker, clock, refusals=1000)
    for _ in range(WINDOW + 20):
        tick(account, broker, clock, 1)
    assert position_quantity(account) == 10
    assert not Order.objects.filter(leg_role="close").exists()


def test_the_exit_order_breaker_opens_after_three_outages_and_defers_placement(client, account, broker, clock):
    entry_id = _fill_with_stop_refused(client, account, broker, clock, refusals=1)   # a refusal: not an outage
    broker.faults.set_unavailable(True)
    for _ in range(3):
        tick(account, broker, clock, 1)                 # three placement attempts meet an unavailable venue
    breakers = client.get("/v1/circuit-breakers").json()
    assert breakers["exit_order"]["state"] == "open"
    assert breakers["adapter"]["state"] == "closed", "exit-leg failures do not trip the adapter breaker"
    attempts = exit_leg(entry_id, "stop_loss").attempts

    broker.faults.set_unavailable(False)
    for _ in range(5):
        tick(account, broker, clock, 1)
    leg = exit_leg(entry_id, "stop_loss")
    assert leg.status == "FAILED" and leg.attempts > attempts, "deferred while the breaker is open"
    assert legs(entry_id)["stop_loss"] == [], "nothing is sent while the breaker is open"
    [alert] = _unprotected()
    assert alert.details["circuit_breaker_open"] is True
    assert "circuit breaker" in alert.details["failed_exits"][0]["error"]

    # a new entry filled while the breaker is open gets no leg and is reported at once
    other = submit_bracket(client, client_order_id="e-2")["id"]
    tick(account, broker, clock, 1)
    assert legs(other) == {"stop_loss": [], "take_profit": []}
    assert {leg.status for leg in ExitLeg.objects.filter(entry_id=other)} == {"FAILED"}
    assert Alert.objects.get(entry_id=other).details["circuit_breaker_open"] is True

    # a manual reset lets the engine protect both entries, which resolves the alerts
    clock.shift(60)
    assert client.generic("POST", "/v1/circuit-breakers/reset").status_code == 200
    for _ in range(6):
        tick(account, broker, clock, 1)
    assert set(ExitLeg.objects.values_list("status", flat=True)) == {"PLACED"}
    assert {a.status for a in _unprotected()} == {"RESOLVED"}
    assert [o.client_order_id for o in legs(entry_id)["stop_loss"]] == ["e-1-sl"]


@pytest.mark.parametrize("profile_name", ["none", "native_oco"])
def test_two_outages_placing_a_leg_do_not_yet_open_the_exit_order_breaker(client, account, settings, clock,
                                                                          profile_name):
    """Three failures open it; a pair sent as one OCO order fails once per attempt, not once per leg."""
    broker = use_profile(settings, profile_name)
    entry_id = _fill_with_stop_refused(client, account, broker, clock, refusals=1)
    broker.faults.set_unavailable(True)
    tick(account, broker, clock, 1)
    tick(account, broker, clock, 1)
    assert client.get("/v1/circuit-breakers").json()["exit_order"] == {"state": "closed", "failure_count": 2}
    broker.faults.set_unavailable(False)
    for _ in range(3):
        tick(account, broker, clock, 1)
    assert set(ExitLeg.objects.filter(entry_id=entry_id).values_list("status", flat=True)) == {"PLACED"}
    assert not _unprotected()


def test_an_unprotected_alert_of_one_entry_stays_open_when_another_entry_gets_protected(
        client, account, broker, clock):
    broker.faults.reject_next(1000, kind="LIMIT", message="take-profit refused by injected fault")
    first = submit_bracket(client, client_order_id="e-1")["id"]
    tick(account, broker, clock, 0)
    for _ in range(WINDOW + 1):
        tick(account, broker, clock, 1)
    [alert] = _unprotected()
    assert exit_leg(first, "take_profit").status == "FAILED"

    broker.faults.reject_next(1, kind="STOP")                # the second entry's stop fails once only
    second = submit_bracket(client, client_order_id="e-2", tp=False)["id"]
    tick(account, broker, clock, 0)
    assert exit_leg(second, "stop_loss").status == "RETRYING"
    tick(account, broker, clock, 1)
    assert exit_leg(second, "stop_loss").status == "PLACED"

    assert exit_leg(first, "take_profit").status == "FAILED"
    alert.refresh_from_db()
    assert alert.status == "OPEN", "the first entry is still unprotected"
    assert len(_unprotected()) == 1
