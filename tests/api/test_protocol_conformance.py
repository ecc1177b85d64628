"""The 20 behaviours of the Trading Gateway conformance checklist (PROTOCOL.md §16), one test each,
adapted to the paper venue: positions are ``paper-pos-<SYMBOL>``, a submitted order is ``OPEN`` and the
mock's ~0.5 s fill is one engine tick. Behaviours 8 and 19 also involve the WebSocket stream; only their
REST half is tested here.

Every JSON body received in this module is validated against the matching schema of the reference
``openapi.json`` (``tests/reference_schema.py``)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from orders.models import Event
from tests.api.support import J, order_body
from tests.builders import run_engine
from tests.reference_schema import assert_conforms

pytestmark = pytest.mark.django_db

GATEWAY_KEY = "conformance-gateway-key-0123456789abcdef"


class CheckedClient:
    """The Django test client, checking every JSON response against the reference schema."""

    def __init__(self, client) -> None:
        self.client = client
        self.checked = 0

    def _check(self, response):
        if response["Content-Type"].startswith("application/json"):
            assert_conforms(response)
            self.checked += 1
        return response

    def get(self, path: str, **kwargs):
        return self._check(self.client.get(path, **kwargs))

    def post(self, path: str, data=None, **kwargs):
        if data is not None and not isinstance(data, str):
            data = json.dumps(data)
        if data is None:             # as a script's bare POST: no body, no Content-Type
            return self._check(self.client.generic("POST", path, **kwargs))
        kwargs.setdefault("content_type", J)
        return self._check(self.client.post(path, data, **kwargs))

    def patch(self, path: str, data, **kwargs):
        return self._check(self.client.patch(path, data if isinstance(data, str) else json.dumps(data),
                                             content_type=J, **kwargs))

    def delete(self, path: str, data=None, **kwargs):
        if data is None:
            return self._check(self.client.delete(path, **kwargs))
        return self._check(self.client.delete(path, data, content_type=J, **kwargs))


@pytest.fixture
def gw(client):
    checked = CheckedClient(client)
    yield checked
    assert checked.checked > 0


def order_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [o["id"] for o in response.json()]


def live_quote(gw) -> dict[str, Decimal]:
    body = gw.get("/v1/quotes/AAPL").json()
    return {k: Decimal(body[k]) for k in ("bid", "ask", "last")}


def submit_open_limit(gw) -> str:
    price = live_quote(gw)["bid"] - 5
    response = gw.post("/v1/orders", order_body(order_type="LIMIT", limit_price=str(price)))
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_01_livez_answers_ok_without_credentials_even_with_a_key_configured(gw, settings):
    settings.GATEWAY_API_KEY, settings.API_ALLOW_KEYLESS = GATEWAY_KEY, False
    response = gw.get("/livez")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_02_account_needs_the_configured_key(gw, account, settings):
    settings.GATEWAY_API_KEY, settings.API_ALLOW_KEYLESS = GATEWAY_KEY, False
    missing = gw.get("/v1/account")
    assert missing.status_code == 401
    assert missing.json()["code"] == "UNAUTHORIZED"
    assert missing.json()["details"] == {"code": "MISSING_API_KEY"}
    wrong = gw.get("/v1/account", headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong.status_code == 401
    assert wrong.json()["details"] == {"code": "INVALID_API_KEY"}
    assert gw.get("/v1/account", headers={"X-API-Key": GATEWAY_KEY}).status_code == 200


def test_03_a_lowercase_market_order_is_accepted_as_open(gw, account, clock):
    response = gw.post("/v1/orders", {"symbol": "AAPL", "side": "buy", "order_type": "market", "quantity": "1"})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "OPEN"
    assert body["id"]
    assert uuid.UUID(body["correlation_id"]).version == 4


def test_04_an_empty_order_is_invalid_request_and_a_zero_quantity_a_validation_error(gw, account, clock):
    empty = gw.post("/v1/orders", {})
    assert empty.status_code == 400
    assert empty.json()["code"] == "INVALID_REQUEST"
    zero = gw.post("/v1/orders", order_body(quantity="0"))
    assert zero.status_code == 400
    assert zero.json()["code"] == "VALIDATION_ERROR"
    assert zero.json()["details"]["quantity"][0]["code"] == "must be positive"


def test_05_a_limit_without_price_names_the_field_and_a_market_with_one_says_what_was_provided(gw, account,
                                                                                               clock):
    missing = gw.post("/v1/orders", order_body(order_type="LIMIT"))
    assert missing.status_code == 400
    assert missing.json()["code"] == "INVALID_REQUEST"
    assert missing.json()["details"]["field"] == "limit_price"
    extra = gw.post("/v1/orders", order_body(limit_price="150"))
    assert extra.status_code == 400
    assert extra.json()["code"] == "INVALID_VALUE"
    assert extra.json()["details"]["provided"] == "150"


def test_06_a_65_character_client_order_id_is_refused_and_64_accepted(gw, account, clock):
    long = gw.post("/v1/orders", order_body(client_order_id="c" * 65))
    assert long.status_code == 400
    assert long.json()["code"] == "VALIDATION_ERROR"
    assert "client_order_id" in long.json()["details"]
    assert gw.post("/v1/orders", order_body(client_order_id="c" * 64)).status_code == 201


def test_07_a_percent_trailing_distance_of_100_is_refused_and_99_accepted(gw, account, clock):
    trailing = {"order_type": "TRAILING_STOP", "trailing_type": "PERCENT"}
    refused = gw.post("/v1/orders", order_body(trailing_distance="100", **trailing))
    assert refused.status_code == 400
    assert refused.json()["code"] == "INVALID_VALUE"
    assert refused.json()["details"]["field"] == "trailing_distance"
    assert gw.post("/v1/orders", order_body(trailing_distance="99", **trailing)).status_code == 201


def test_08_rest_half_a_market_order_fills_on_the_next_tick_and_opens_a_long_position(gw, account, broker, clock):
    handle = gw.post("/v1/orders", order_body(quantity="10")).json()
    assert handle["status"] == "OPEN"
    run_engine(account, broker, seconds=1, clock=clock)
    order = gw.get(f"/v1/orders/{handle['id']}").json()
    assert order["status"] == "FILLED"
    assert order["filled_quantity"] == order["quantity"] == "10"
    assert "average_fill_price" in order
    positions = gw.get("/v1/positions").json()
    assert [(p["id"], p["side"], p["quantity"]) for p in positions] == [("paper-pos-AAPL", "LONG", "10")]


def test_09_an_unknown_order_is_404_order_not_found_naming_it(gw, account):
    response = gw.get("/v1/orders/no-such-order")
    assert response.status_code == 404
    assert response.json()["code"] == "ORDER_NOT_FOUND"
    assert response.json()["details"] == {"resource": "order", "id": "no-such-order"}


def test_10_a_comma_separated_status_filter_equals_the_repeated_one_and_lowercase_is_refused(gw, account, broker,
                                                                                            clock):
    gw.post("/v1/orders", order_body())
    run_engine(account, broker, seconds=1, clock=clock)
    open_id = submit_open_limit(gw)
    comma = order_ids(gw.get("/v1/orders?status=OPEN,PARTIALLY_FILLED"))
    repeated = order_ids(gw.get("/v1/orders?status=OPEN&status=PARTIALLY_FILLED"))
    assert comma == repeated == [open_id]
    assert gw.get("/v1/orders?status=open").status_code == 400


def test_11_a_client_order_id_lookup_after_a_retried_submit_finds_the_one_order(gw, account, clock):
    first = gw.post("/v1/orders", order_body(client_order_id="X")).json()
    retry = gw.post("/v1/orders", order_body(client_order_id="X"))
    assert retry.status_code == 201
    assert retry.json()["id"] == first["id"]
    found = gw.get("/v1/orders?client_order_id=X")
    assert order_ids(found) == [first["id"]]


def test_12_cancel_one_answers_the_cancelled_order_and_cancel_all_counts(gw, account, broker, clock):
    one = submit_open_limit(gw)
    cancelled = gw.delete(f"/v1/orders/{one}")
    assert cancelled.status_code == 200
    assert cancelled.json()["success"] is True
    assert cancelled.json()["order"]["status"] == "CANCELLED"
    submit_open_limit(gw)
    submit_open_limit(gw)
    assert gw.delete("/v1/orders").json() == {"cancelled_count": 2, "failed_count": 0}
    stuck = submit_open_limit(gw)
    broker.faults.set_unavailable(True)
    assert gw.delete("/v1/orders").json() == {"cancelled_count": 0, "failed_count": 1, "failed_order_ids": [stuck]}


def test_13_closing_a_position_fills_at_once_an_unknown_one_is_404_and_close_all_of_nothing_is_empty(
        gw, account, broker, clock):
    gw.post("/v1/orders", order_body())
    gw.post("/v1/orders", order_body(symbol="MSFT", quantity="1"))
    run_engine(account, broker, seconds=1, clock=clock)
    with_body = gw.delete("/v1/positions/paper-pos-AAPL", "{}")
    assert with_body.status_code == 200
    assert with_body.json()["status"] == "FILLED"
    without_body = gw.delete("/v1/positions/paper-pos-MSFT")
    assert without_body.status_code == 200
    assert without_body.json()["status"] == "FILLED"
    unknown = gw.delete("/v1/positions/paper-pos-AAPL", "{}")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "POSITION_NOT_FOUND"
    everything = gw.delete("/v1/positions")
    assert everything.status_code == 200
    assert everything.json() == []


def bracket_p1(gw, account, broker, clock) -> tuple[dict, dict, dict]:
    """Submit the checklist's bracket (client id ``p1``) and fill it: the entry is FILLED before any leg
    exists. Returns (entry, stop-loss leg, take-profit leg) as the API shows them."""
    q = live_quote(gw)
    handle = gw.post("/v1/orders", order_body(client_order_id="p1", stop_loss=str(q["bid"] - 5),
                                              take_profit=str(q["ask"] + 5))).json()
    assert gw.get(f"/v1/orders/{handle['id']}").json()["status"] == "OPEN"
    assert gw.get("/v1/orders?client_order_id=p1-sl").json() == []
    assert gw.get("/v1/orders?client_order_id=p1-tp").json() == []
    run_engine(account, broker, seconds=1, clock=clock)
    entry = gw.get(f"/v1/orders/{handle['id']}").json()
    assert entry["status"] == "FILLED"
    [sl] = gw.get("/v1/orders?client_order_id=p1-sl").json()
    [tp] = gw.get("/v1/orders?client_order_id=p1-tp").json()
    assert entry["updated_at"] <= sl["created_at"] and entry["updated_at"] <= tp["created_at"]
    return entry, sl, tp


def order_events(order_id: str) -> list[tuple[int, str]]:
    return [(e.id, e.payload["event"]) for e in Event.objects.filter(kind="order").order_by("id")
            if e.payload["order"]["id"] == order_id]


def test_14_bracket_legs_appear_once_the_entry_has_filled(gw, account, broker, clock):
    entry, sl, tp = bracket_p1(gw, account, broker, clock)
    listed = {o["client_order_id"]: o for o in gw.get("/v1/orders").json() if o.get("client_order_id")}
    assert listed["p1-sl"]["order_type"] == "STOP"
    assert listed["p1-tp"]["order_type"] == "LIMIT"
    for leg in (sl, tp):
        assert leg["side"] == "SELL"
        assert leg["quantity"] == entry["quantity"]
        assert leg["parent_order_id"] == entry["id"]
        assert leg["reduce_only"] is True
        assert leg["status"] == "OPEN"
    [filled_at] = [event_id for event_id, name in order_events(entry["id"]) if name == "ORDER_FILLED"]
    for leg in (sl, tp):
        [created_at] = [event_id for event_id, name in order_events(leg["id"]) if name == "ORDER_CREATED"]
        assert filled_at < created_at


def test_15_closing_the_bracketed_position_cancels_both_legs(gw, account, broker, clock):
    _, sl, tp = bracket_p1(gw, account, broker, clock)
    closed = gw.delete("/v1/positions/paper-pos-AAPL")
    assert closed.status_code == 200
    assert closed.json()["status"] == "FILLED"
    for leg in (sl, tp):
        assert gw.get(f"/v1/orders/{leg['id']}").json()["status"] == "CANCELLED"
        assert [name for _, name in order_events(leg["id"])][-1] == "ORDER_CANCELLED"


def test_16_moving_exits_needs_a_leg_a_tracked_leg_and_a_known_position(gw, account, broker, clock):
    assert gw.patch("/v1/positions/paper-pos-AAPL", {}).json()["code"] == "VALIDATION_ERROR"
    gw.post("/v1/orders", order_body())
    run_engine(account, broker, seconds=1, clock=clock)
    untracked = gw.patch("/v1/positions/paper-pos-AAPL", {"take_profit": "160"})
    assert untracked.status_code == 409
    assert untracked.json()["code"] == "ORDER_NOT_MODIFIABLE"
    unknown = gw.patch("/v1/positions/paper-pos-MSFT", {"take_profit": "450"})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "POSITION_NOT_FOUND"


def test_17_breakers_start_closed_and_a_second_reset_within_a_minute_is_refused(gw, account, clock):
    closed = {"state": "closed", "failure_count": 0}
    assert gw.get("/v1/circuit-breakers").json() == {"adapter": closed, "exit_order": closed}
    assert gw.post("/v1/circuit-breakers/reset").status_code == 200
    again = gw.post("/v1/circuit-breakers/reset")
    assert again.status_code == 409
    assert again.json()["code"] == "RESET_COOLDOWN"


def test_18_five_hourly_bars_come_ascending_as_strings_and_timeframe_is_required(gw, account, clock):
    bars = gw.get("/v1/bars/AAPL?timeframe=1h&limit=5").json()
    assert len(bars) == 5
    assert [b["timestamp"] for b in bars] == sorted(b["timestamp"] for b in bars)
    assert {b["timeframe"] for b in bars} == {"1h"}
    assert all(isinstance(b[k], str) for b in bars for k in ("open", "high", "low", "close", "volume"))
    assert gw.get("/v1/bars/AAPL?limit=5").status_code == 400


def test_19_rest_half_quotes_and_candles_keep_coming_as_time_passes(gw, account, clock):
    first = gw.get("/v1/quotes/AAPL").json()
    last_bar = gw.get("/v1/bars/AAPL?timeframe=1m&limit=1").json()[-1]
    clock.shift(120)
    later = gw.get("/v1/quotes/AAPL").json()
    assert datetime.fromisoformat(later["timestamp"]) - datetime.fromisoformat(first["timestamp"]) == timedelta(
        seconds=120)
    newest_bar = gw.get("/v1/bars/AAPL?timeframe=1m&limit=1").json()[-1]
    assert datetime.fromisoformat(newest_bar["timestamp"]) - datetime.fromisoformat(last_bar["timestamp"]) == \
        timedelta(minutes=2)


def test_20_health_and_readiness_report_the_one_connected_provider(gw, account):
    health = gw.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "connected"
    assert {"version", "git_sha"} <= set(body)
    assert body["providers"] == [{"platform": "paper", "connected": True}]
    ready = gw.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "providers": ["paper"], "provider_count": 1}
