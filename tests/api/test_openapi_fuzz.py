"""Property-based fuzzing of every /v1 operation against our own OpenAPI document.

Schemathesis reads ``/v1/openapi.json`` from the Django app itself and calls each operation
in-process through the WSGI app, with valid and invalid data (examples, coverage and fuzzing
phases), as the keyless loopback caller acting on the default account. Every response must
be a non-5xx answer whose status code, content type and body are the ones the document
declares for that operation. Generation is bounded and deterministic."""

from __future__ import annotations

from decimal import Decimal

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orders.models import Order, Position
from tests.builders import run_engine

django_app = get_wsgi_application()


def loopback_app(environ, start_response):
    """Django's WSGI app as a loopback client reaches it (the in-process client sets no REMOTE_ADDR),
    so keyless requests act on the default account as they do on a loopback deployment."""
    environ["REMOTE_ADDR"] = "127.0.0.1"
    return django_app(environ, start_response)


schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", loopback_app)

SYMBOLS = ["AAPL", "MSFT", "BTCUSDT", "F:EURUSD"]
NON_MARKET_FIELDS = {"limit_price", "stop_price", "trailing_distance", "trailing_type", "display_quantity",
                     "stop_loss_trailing_distance", "stop_loss_trailing_type", "position_id", "oco_group_id"}
KNOWN: dict[str, list[str]] = {}   # ids of the seeded resources, filled by the ``desk_with_orders`` fixture
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def desk_with_orders(client, account, broker, clock):
    """The default account holding an AAPL position and a resting limit order, so list and
    lookup operations answer with real bodies as well as with empty lists and 404s."""
    entry = client.post("/v1/orders", {"symbol": "AAPL", "side": "BUY", "quantity": "10", "order_type": "MARKET"},
                        content_type="application/json")
    assert entry.status_code == 201
    run_engine(account, broker, seconds=1, clock=clock)
    resting = client.post("/v1/orders", {"symbol": "MSFT", "side": "BUY", "quantity": "1", "order_type": "LIMIT",
                                         "limit_price": "300.00"}, content_type="application/json")
    assert resting.status_code == 201
    assert Position.objects.get(account=account, symbol="AAPL").quantity == Decimal("10")
    assert Order.objects.filter(account=account).count() == 2
    KNOWN["order_id"] = [entry.json()["id"], resting.json()["id"]]
    KNOWN["position_id"] = ["paper-pos-AAPL", "AAPL"]
    KNOWN["symbol"] = SYMBOLS
    yield account
    KNOWN.clear()


def known_path_parameters(context, path_parameters):
    """Point path parameters at the seeded orders, position and tradeable symbols."""
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    choices = {name: st.sampled_from(KNOWN[name]) for name in path_parameters if KNOWN.get(name)}
    return st.fixed_dictionaries(choices).map(lambda known: {**path_parameters, **known})


def tradeable_order(context, body):
    """Give generated order bodies a symbol the paper venue trades and a plausible quantity, so they
    get past field validation into the venue's pre-trade checks, the funding check and the book."""
    if not isinstance(body, dict) or "symbol" not in body:
        return st.just(body)
    tradeable = {"symbol": st.sampled_from(SYMBOLS)}
    if "quantity" in body:
        tradeable["quantity"] = st.sampled_from(["1", "5", "0.5", "1000", "2000000"])
    bodies = st.fixed_dictionaries(tradeable).map(lambda fields: {**body, **fields})
    return bodies.flatmap(lambda order: st.sampled_from([order, as_market_order(order)]))


def as_market_order(order: dict) -> dict:
    """The same order as a plain market order, without the prices a market order must not carry."""
    return {**{k: v for k, v in order.items() if k not in NON_MARKET_FIELDS}, "order_type": "MARKET"}


def test_the_fuzzed_document_is_our_v1_api_with_its_core_operations():
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert {("POST", "/v1/orders"), ("GET", "/v1/orders"), ("GET", "/v1/orders/{order_id}"),
            ("DELETE", "/v1/positions/{position_id}"), ("GET", "/v1/quotes/{symbol}"), ("GET", "/v1/bars/{symbol}"),
            ("GET", "/v1/account")} <= operations


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=25, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_for_any_input(case, desk_with_orders):
    case.call_and_validate(checks=CHECKS)


@pytest.mark.django_db(transaction=True)
@schema.hooks.apply(known_path_parameters, name="flatmap_path_parameters")
@schema.hooks.apply(tradeable_order, name="flatmap_body")
@schema.parametrize()
@settings(max_examples=25, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_on_existing_orders_positions_and_symbols(case, desk_with_orders):
    case.call_and_validate(checks=CHECKS)


# --- what the fuzzing found, pinned ----------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/v1/orders", "/v1/orders/history", "/v1/trades"])
@pytest.mark.parametrize("limit", [2**32, 2**64, 4455041428381146971545534464])
def test_a_list_limit_beyond_the_gateways_u32_range_is_refused_with_a_400_not_a_500(client, account, path, limit):
    response = client.get(path, {"limit": limit})

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"
    assert response.json()["details"] == {"field": "limit"}


@pytest.mark.django_db
@pytest.mark.parametrize("method, path, code", [
    ("get", "/v1/quotes/AA%0APL", "SYMBOL_NOT_FOUND"),
    ("get", "/v1/bars/AA%0APL?timeframe=1m", "SYMBOL_NOT_FOUND"),
    ("get", "/v1/positions/paper-pos-AA%0APL", "POSITION_NOT_FOUND"),
    ("delete", "/v1/positions/paper-pos-AA%0APL", "POSITION_NOT_FOUND"),
])
def test_a_symbol_or_position_id_holding_a_line_break_gets_the_json_error_envelope(client, account, method, path,
                                                                                     code):
    response = getattr(client, method)(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code
