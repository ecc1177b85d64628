"""Where one balance backs only one resting reducing order (Kraken Spot; Binance without an OCO), a bracket's stop
rests at the venue and its take-profit is watched by the engine: when the quote reaches it, the stop is cancelled
and what is held is sold at the market. Shown on the paper venue told it is such a venue (``one_resting_exit``),
and for the legs' sizes: rounded down to the venue's step, and an alert with the reason, not a retry loop, when
what is held is below the venue's minimum."""

from __future__ import annotations

import pytest

from orders.brokers import get_broker, reset_broker_cache
from orders.models import Alert, AuditEvent, ExitLeg, Order
from tests.exits.conftest import D, legs, position_quantity, quote, shock, submit, tick, use_profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_balance(settings, account):
    """The paper venue with the pending strategy, as a venue where a balance backs one resting exit."""
    use_profile(settings, "none")
    broker = get_broker(account.broker)         # the instance the API's orders and the engine both use
    broker.one_resting_exit = True
    yield broker
    reset_broker_cache()


def _bracket(client, *, gap: str = "2") -> tuple[str, D, D]:
    ask = quote(client)["ask"]
    stop_loss, take_profit = ask - D(gap), ask + D(gap)
    return submit(client, stop_loss=stop_loss, take_profit=take_profit)["id"], stop_loss, take_profit


def test_only_the_stop_rests_and_the_take_profit_is_armed(client, account, one_balance, clock):
    entry_id, stop_loss, _ = _bracket(client)
    tick(account, one_balance, clock, 1)

    assert position_quantity(account) == 10
    resting = legs(entry_id)
    assert [(o.order_type, o.status, o.quantity, o.stop_price) for o in resting["stop_loss"]] == [
        ("STOP", "OPEN", D(10), stop_loss)]
    assert resting["take_profit"] == [], "nothing rests for the take-profit: the stop holds the balance"
    take_profit = ExitLeg.objects.get(entry_id=entry_id, role="take_profit")
    assert (take_profit.status, take_profit.emulated) == ("PLACED", True)
    assert not Alert.objects.exists()


def test_the_quote_reaching_the_take_profit_cancels_the_stop_and_sells_at_the_market(
        client, account, one_balance, clock):
    entry_id, _, take_profit = _bracket(client)
    tick(account, one_balance, clock, 1)

    shock(one_balance, "5", after=1)          # AAPL ~150: +5 % is well past a take-profit 2 above the ask
    tick(account, one_balance, clock, 2)      # the engine sees the quote: stop cancelled, market sell sent
    tick(account, one_balance, clock, 1)      # ... and filled

    resting = legs(entry_id)
    assert [o.status for o in resting["stop_loss"]] == ["CANCELLED"]
    assert [(o.order_type, o.side, o.quantity, o.status) for o in resting["take_profit"]] == [
        ("MARKET", "SELL", D(10), "FILLED")]
    assert resting["take_profit"][0].average_fill_price >= take_profit
    assert position_quantity(account) == 0
    assert {leg.role: leg.status for leg in ExitLeg.objects.filter(entry_id=entry_id)} == {
        "stop_loss": "CANCELLED", "take_profit": "FILLED"}
    assert not Alert.objects.filter(kind="POSITION_UNPROTECTED").exists()
    assert AuditEvent.objects.filter(action="take_profit.fire").count() == 1


def test_a_take_profit_still_out_of_reach_leaves_the_stop_resting(client, account, one_balance, clock):
    entry_id, _, _ = _bracket(client, gap="20")
    for _ in range(5):
        tick(account, one_balance, clock, 1)
    assert [o.status for o in legs(entry_id)["stop_loss"]] == ["OPEN"]
    assert legs(entry_id)["take_profit"] == []


def test_a_stop_hit_first_ends_the_watched_take_profit(client, account, one_balance, clock):
    entry_id, _, _ = _bracket(client)
    tick(account, one_balance, clock, 1)
    shock(one_balance, "-5", after=1)
    tick(account, one_balance, clock, 2)
    tick(account, one_balance, clock, 1)

    assert position_quantity(account) == 0
    assert [o.status for o in legs(entry_id)["stop_loss"]] == ["FILLED"]
    assert legs(entry_id)["take_profit"] == []
    assert ExitLeg.objects.get(entry_id=entry_id, role="take_profit").status == "CANCELLED"


def test_a_fee_in_the_coin_sizes_the_legs_to_what_is_held_on_the_venue_step(client, account, settings, clock):
    """Buying 0.01 ETH pays its 0.1 % fee in ETH: 0.00999 is held, and the legs sell 0.0099 (the 0.0001 step)."""
    broker = use_profile(settings, "none")
    ask = quote(client, "ETHUSDT")["ask"]
    entry = client.post("/v1/orders", {"symbol": "ETHUSDT", "side": "BUY", "quantity": "0.01",
                                       "order_type": "MARKET", "stop_loss": str(ask - 100),
                                       "take_profit": str(ask + 100)}, content_type="application/json")
    assert entry.status_code == 201, entry.content
    tick(account, broker, clock, 1)

    held = position_quantity(account, "ETHUSDT")
    assert held < D("0.01"), "the fee in the coin leaves less than was bought"
    for order in Order.objects.filter(parent_id=entry.json()["id"], exit_leg__isnull=False):
        assert order.quantity == D("0.0099") and order.quantity <= held
        assert order.status == "OPEN"
    assert not Alert.objects.exists()


def test_a_leg_the_balance_cannot_cover_is_an_alert_with_the_reason_at_once_not_a_retry_loop(
        client, account, settings, clock):
    broker = use_profile(settings, "none")
    broker.faults.reject_next(1000, kind="STOP", reason="INSUFFICIENT_BALANCE",
                              message="Account has insufficient balance for requested action.")
    entry_id = submit(client, stop_loss=quote(client)["ask"] - 2)["id"]
    tick(account, broker, clock, 1)

    alert = Alert.objects.get(kind="POSITION_UNPROTECTED")          # at once, not after the retry window
    assert "insufficient balance" in alert.details["failed_exits"][0]["error"]
    leg = ExitLeg.objects.get(entry_id=entry_id)
    attempts = leg.attempts
    for _ in range(30):
        tick(account, broker, clock, 1)
    leg.refresh_from_db()
    assert leg.attempts == attempts, "looked at again only after a minute, not every few seconds"
    tick(account, broker, clock, 60)
    leg.refresh_from_db()
    assert leg.attempts == attempts + 1
    assert leg.status == "FAILED" and Alert.objects.filter(kind="POSITION_UNPROTECTED").count() == 1


def test_a_sale_the_venue_refuses_puts_the_stop_back_and_arms_the_take_profit_again(
        client, account, one_balance, clock):
    entry_id, stop_loss, _ = _bracket(client)
    tick(account, one_balance, clock, 1)
    one_balance.faults.reject_next(1, kind="MARKET", reason="INSUFFICIENT_BALANCE", message="venue says no")
    shock(one_balance, "5", after=1)
    tick(account, one_balance, clock, 2)

    resting = legs(entry_id)
    assert [o.status for o in resting["stop_loss"]] == ["CANCELLED", "OPEN"], "cancelled for the sale, then back"
    assert resting["stop_loss"][-1].stop_price == stop_loss and resting["stop_loss"][-1].quantity == 10
    assert resting["take_profit"] == []
    assert ExitLeg.objects.get(entry_id=entry_id, role="stop_loss").status == "PLACED"
    assert position_quantity(account) == 10

    tick(account, one_balance, clock, 5)          # after the backoff the take-profit is armed and fires again
    tick(account, one_balance, clock, 1)
    assert position_quantity(account) == 0
    assert ExitLeg.objects.get(entry_id=entry_id, role="take_profit").status == "FILLED"
    assert ExitLeg.objects.get(entry_id=entry_id, role="stop_loss").status == "CANCELLED"
