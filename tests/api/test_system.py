"""/v1/account, /v1/capabilities, /v1/status, /v1/circuit-breakers and the probes outside /v1."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db import OperationalError

from orders.brokers import get_broker, reset_broker_cache
from tests.api.support import assert_error, get_order, submit
from tests.builders import run_engine

pytestmark = pytest.mark.django_db

ACCOUNT_DECIMALS = ("balance", "equity", "margin_used", "margin_available", "unrealized_pnl")


def account_figures(client) -> dict:
    response = client.get("/v1/account")
    assert response.status_code == 200, response.content
    body = response.json()
    for name in ACCOUNT_DECIMALS:
        assert isinstance(body[name], str), name
    return body


def submitted_total(client) -> float:
    """The value of gateway_orders_submitted_total for the paper venue (0 before it first appears)."""
    text = client.get("/metrics").content.decode()
    match = re.search(r'^gateway_orders_submitted_total\{platform="paper"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0


# -- account ----------------------------------------------------------------------------------------------------

def test_a_fresh_account_holds_its_cash(client, account):
    assert account_figures(client) == {"balance": "100000", "equity": "100000", "margin_used": "0",
                                       "margin_available": "100000", "unrealized_pnl": "0", "currency": "USD"}


def test_a_buy_fill_moves_the_notional_from_balance_into_the_position(client, account, broker, clock):
    handle = submit(client, quantity="10").json()
    run_engine(account, broker, seconds=1, clock=clock)
    price = Decimal(get_order(client, handle["id"])["average_fill_price"])
    figures = account_figures(client)
    assert Decimal(figures["balance"]) == Decimal("100000") - 10 * price
    [position] = client.get("/v1/positions").json()
    value = Decimal(position["quantity"]) * Decimal(position["current_price"])
    assert Decimal(figures["equity"]) == Decimal(figures["balance"]) + value
    assert Decimal(figures["unrealized_pnl"]) == Decimal(position["unrealized_pnl"])
    assert Decimal(figures["margin_used"]) == value


def test_a_round_trip_leaves_the_balance_changed_only_by_the_pnl(client, account, broker, clock):
    entry = submit(client, quantity="10").json()
    run_engine(account, broker, seconds=1, clock=clock)
    clock.shift(300)
    close = client.delete("/v1/positions/paper-pos-AAPL").json()
    bought = Decimal(get_order(client, entry["id"])["average_fill_price"])
    sold = Decimal(get_order(client, close["id"])["average_fill_price"])
    figures = account_figures(client)
    assert Decimal(figures["balance"]) == Decimal("100000") + (sold - bought) * 10
    assert figures["equity"] == figures["balance"]
    assert figures["margin_used"] == "0"


def test_a_resting_buy_holds_buying_power_but_not_cash(client, account, clock):
    submit(client, order_type="LIMIT", limit_price="140", quantity="100")
    figures = account_figures(client)
    assert figures["balance"] == "100000"
    assert Decimal(figures["margin_available"]) == Decimal("100000") - 100 * Decimal("140")


# -- capabilities and status ------------------------------------------------------------------------------------

def test_capabilities_list_every_order_type_and_netting(client, account):
    response = client.get("/v1/capabilities")
    assert response.status_code == 200
    body = response.json()
    assert set(body["supported_order_types"]) == {"MARKET", "LIMIT", "STOP", "STOP_LIMIT", "TRAILING_STOP"}
    assert set(body["supported_asset_classes"]) == {"STOCK", "CRYPTO", "FOREX"}
    assert body["position_mode"] == "NETTING"
    assert all(isinstance(feature, str) for feature in body["features"])
    assert "bracket_orders" not in body["features"]
    assert all(isinstance(v, int) for v in body.get("rate_limits", {}).values())
    assert "max_leverage" not in body


def test_capabilities_tell_a_native_bracket_venue_apart(client, account, settings):
    settings.PAPER_CAPABILITY_PROFILE = "native_bracket"
    reset_broker_cache()
    assert "bracket_orders" in client.get("/v1/capabilities").json()["features"]


def test_status_reports_a_connected_venue(client, account, clock):
    body = client.get("/v1/status").json()
    assert body == {"connected": True, "latency_ms": 0, "last_heartbeat": "2026-03-02T15:00:00.000000Z"}


def test_status_reports_an_unavailable_venue_as_disconnected(client, account, broker, clock):
    broker.faults.set_unavailable(True)
    assert client.get("/v1/status").json()["connected"] is False


# -- circuit breakers -------------------------------------------------------------------------------------------

CLOSED = {"state": "closed", "failure_count": 0}


def test_both_breakers_start_closed(client, account):
    assert client.get("/v1/circuit-breakers").json() == {"adapter": CLOSED, "exit_order": CLOSED}


def test_a_reset_answers_fresh_snapshots_and_a_second_within_a_minute_is_409(client, account, clock):
    first = client.generic("POST", "/v1/circuit-breakers/reset")
    assert first.status_code == 200
    assert first.json() == {"adapter": CLOSED, "exit_order": CLOSED}
    body = assert_error(client.generic("POST", "/v1/circuit-breakers/reset"), 409, "RESET_COOLDOWN")
    assert "cooldown" in body["message"]
    assert "details" not in body
    clock.shift(61)
    assert client.generic("POST", "/v1/circuit-breakers/reset").status_code == 200


def test_venue_outages_count_on_the_adapter_breaker_and_three_open_it(client, account, broker, clock):
    broker.faults.set_unavailable(True)
    assert_error(submit(client, expect=None), 503, "PROVIDER_UNAVAILABLE")
    assert client.get("/v1/circuit-breakers").json()["adapter"] == {"state": "closed", "failure_count": 1}
    for _ in range(2):
        assert_error(submit(client, expect=None), 503, "PROVIDER_UNAVAILABLE")
    assert client.get("/v1/circuit-breakers").json()["adapter"]["state"] == "open"
    broker.faults.set_unavailable(False)
    refused = assert_error(submit(client, expect=None), 503, "PROVIDER_UNAVAILABLE")
    assert "circuit breaker" in refused["message"]
    assert client.generic("POST", "/v1/circuit-breakers/reset").json()["adapter"] == CLOSED
    submit(client)


# -- probes and metrics -----------------------------------------------------------------------------------------

def test_livez_is_always_ok(client, settings):
    settings.API_ALLOW_KEYLESS = False
    response = client.get("/livez", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_readyz_names_the_one_provider(client, account):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "providers": ["paper"], "provider_count": 1}


def test_readyz_is_503_with_its_reason_when_the_database_cannot_be_reached(client, account, monkeypatch):
    def unreachable():
        raise OperationalError("connection refused")

    monkeypatch.setattr("orders.api.health.connection.cursor", unreachable)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.content == (b'{"ready": false, "providers": [], "provider_count": 0, '
                                b'"message": "database unavailable"}')


def test_health_reports_a_connected_provider_without_stale_instruments(client, account):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "connected"
    assert body["providers"] == [{"platform": "paper", "connected": True}]
    assert isinstance(body["version"], str) and body["version"]
    assert isinstance(body["git_sha"], str) and body["git_sha"]


def test_health_reports_an_unavailable_provider_as_degraded_with_200(client, account):
    get_broker().faults.set_unavailable(True)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["providers"][0]["connected"] is False


def test_metrics_are_prometheus_text(client, account, clock):
    submit(client)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    assert "# TYPE gateway_orders_submitted_total counter" in text
    assert "# TYPE gateway_order_submit_duration_seconds histogram" in text
    assert re.search(r'^gateway_order_submit_duration_seconds_count\{platform="paper"\} [1-9][0-9]*\.0$', text,
                     re.MULTILINE)


def test_the_submitted_orders_counter_counts_accepted_orders_only(client, account, clock):
    before = submitted_total(client)
    submit(client, client_order_id="counted")
    assert submitted_total(client) == before + 1
    submit(client, client_order_id="counted")
    assert_error(submit(client, expect=None, symbol="ZZZZ"), 422, "SYMBOL_NOT_TRADEABLE")
    assert submitted_total(client) == before + 1

