"""The Kraken Spot adapter against recorded Kraken answers served by ``responses``.

Payloads (``tests/brokers/payloads/kraken_*.json``) are the examples of krakenfx/api-specs ``spot-rest``
(``examples/responses/**`` and the inline examples of ``openapi_v3.yaml``), converted to JSON as recorded;
tests change only the fields that tie an answer to the order under test (txid, cl_ord_id, volumes, status).
Error envelopes use the real shape ``{"error": ["EOrder:Insufficient funds"], "result": {}}`` with HTTP 200
(NOTES §4.5/§7: the spec's ``errors/*.yaml`` shape is not what Kraken sends). Expected request bodies come
from ccxt's recorded wire bodies (``ccxt/request/kraken.json``).

``KrakenVenue`` below is the fake venue the contract and bracket tests share: it verifies the ``API-Sign``
of every private call against the test secret and refuses a nonce that does not increase, as Kraken does.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured

from orders.brokers import get_broker
from orders.brokers.http import HttpClient, RetryPolicy
from orders.brokers.kraken import (
    KRAKEN_ERRORS,
    KrakenBroker,
    KrakenConfig,
    NonceSource,
    build_kraken_broker,
    kraken_client_id,
    kraken_signature,
    parse_kraken_status,
    to_kraken_order,
)
from orders.brokers.types import AccountContext, BracketStrategy, OrderTicket, ReportKind, WorkingOrder
from orders.domain.account import account_figures
from orders.domain.enums import OrderStatus, OrderType, Side, TimeInForce, TrailingType
from orders.domain.errors import (
    InvalidRequest,
    OrderNotFound,
    OrderRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SymbolNotFound,
    Unauthorized,
    Unsupported,
)
from orders.domain.orders import OrderRequest

PAYLOADS = Path(__file__).parent / "payloads"
BASE = "https://api.kraken.com"
API_KEY = "kraken-test-key"
# Kraken's documented example private key (docs.kraken.com "Spot REST Authentication")
SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ORDER_ID = "0b8e8f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
PUBLIC = ("AssetPairs", "Ticker", "OHLC", "SystemStatus")
PRIVATE = ("AddOrder", "AmendOrder", "CancelOrder", "QueryOrders", "OpenOrders", "ClosedOrders", "QueryTrades",
           "TradesHistory", "Balance", "BalanceEx", "TradeBalance", "GetWebSocketsToken", "CancelAllOrdersAfter")


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / f"kraken_{name}.json").read_text())


def envelope(error: str) -> dict:
    return payload("errors_envelope")[error]


def kraken_order(*, cl_ord_id: str | None, status: str = "open", vol: str = "0.01", vol_exec: str = "0",
                 ordertype: str = "limit", side: str = "buy", price: str = "30000.0", trades: tuple[str, ...] = (),
                 closetm: float | None = None, reason: str | None = None) -> dict:
    """The recorded QueryOrders order (``OBCMZD-JIEE7-77TH3F``) changed to the order under test."""
    raw = copy.deepcopy(payload("user_queryorders")["result"]["OBCMZD-JIEE7-77TH3F"])
    raw.update(cl_ord_id=cl_ord_id, status=status, vol=vol, vol_exec=vol_exec, reason=reason, closetm=closetm,
               price="0" if vol_exec in ("0", "0.00000000") else price)
    raw["descr"].update(type=side, ordertype=ordertype, price=price, pair="XBTUSD",
                        order=f"{side} {vol} XBTUSD @ {ordertype} {price}")
    if trades:
        raw["trades"] = list(trades)
    else:
        raw.pop("trades", None)
    if closetm is None:
        raw.pop("closetm", None)
    return raw


def kraken_trade(*, ordertxid: str, vol: str, price: str, fee: str = "0.05", time: float = 1772463600.5,
                 maker: bool = False, side: str = "buy") -> dict:
    """The recorded QueryTrades trade (``THVRQM-33VKH-UCI7BS``) changed to a fill of the order under test."""
    raw = copy.deepcopy(payload("user_querytrades")["result"]["THVRQM-33VKH-UCI7BS"])
    raw.update(ordertxid=ordertxid, vol=vol, price=price, fee=fee, time=time, maker=maker, type=side,
               cost=str(Decimal(vol) * Decimal(price)))
    return raw


def answer(result: dict) -> dict:
    return {"error": [], "result": result}


@dataclass
class Call:
    endpoint: str
    fields: dict[str, str]
    body: str
    headers: dict[str, str]


class KrakenVenue:
    """Kraken behind ``responses``: every endpoint answers from a queue of staged answers (the last one
    repeats); an answer is a payload dict (HTTP 200), a ``(status, body[, headers])`` tuple, an exception to
    raise, or a function of the request fields. AssetPairs and Ticker answer from the recorded payloads for
    the pair asked about (AssetPairs asked about none lists them all), and the dead man's switch is armed as
    Kraken arms it, as often as the engine likes."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.calls: list[Call] = []
        self.answers: dict[str, list] = {"AssetPairs": [self._asset_pairs], "Ticker": [self._ticker],
                                         "CancelAllOrdersAfter": [payload("trading_cancelallordersafter")]}
        self.last_nonce = 0
        for endpoint in PUBLIC:
            mock.add_callback(responses.GET, re.compile(rf"{BASE}/0/public/{endpoint}(\?.*)?$"),
                              callback=self._handler(endpoint, private=False))
        for endpoint in PRIVATE:
            mock.add_callback(responses.POST, f"{BASE}/0/private/{endpoint}",
                              callback=self._handler(endpoint, private=True))

    def stage(self, endpoint: str, *answers) -> None:
        self.answers[endpoint] = list(answers)

    def calls_to(self, endpoint: str) -> list[Call]:
        return [c for c in self.calls if c.endpoint == endpoint]

    def _handler(self, endpoint: str, *, private: bool) -> Callable:
        def handle(request):
            body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
            query = urlsplit(request.url).query
            fields = dict(parse_qsl(body if private else query, keep_blank_values=True))
            self.calls.append(Call(endpoint, fields, body, dict(request.headers)))
            if private:
                refusal = self._authenticate(request, body, fields)
                if refusal:
                    return 200, {}, json.dumps(envelope(refusal))
            queue = self.answers.get(endpoint)
            if not queue:
                raise AssertionError(f"unexpected call to Kraken {endpoint}: {fields}")
            staged = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(staged, Exception):
                raise staged
            if callable(staged):
                staged = staged(fields)
            status, result, headers = (staged + ({},))[:3] if isinstance(staged, tuple) else (200, staged, {})
            return status, headers, result if isinstance(result, str) else json.dumps(result)
        return handle

    def _authenticate(self, request, body: str, fields: dict) -> str | None:
        if request.headers.get("API-Key") != API_KEY:
            return "EAPI:Invalid key"
        expected = kraken_signature(path=urlsplit(request.url).path, nonce=fields.get("nonce", ""), postdata=body,
                                    secret=SECRET)
        if request.headers.get("API-Sign") != expected or not body.startswith("nonce="):
            return "EAPI:Invalid signature"
        nonce = int(fields["nonce"])
        if nonce <= self.last_nonce:
            return "EAPI:Invalid nonce"
        self.last_nonce = nonce
        return None

    @staticmethod
    def _asset_pairs(fields: dict) -> dict:
        pairs = payload("public_assetpairs")["result"]
        if "pair" not in fields:
            return answer(pairs)
        found = {k: v for k, v in pairs.items() if fields.get("pair") in (k, v["altname"])}
        return answer(found) if found else envelope("EQuery:Unknown asset pair")

    @staticmethod
    def _ticker(fields: dict) -> dict:
        if fields.get("pair") not in ("XBTUSD", "XXBTZUSD"):
            return envelope("EQuery:Unknown asset pair")
        return payload("public_ticker")


def make_kraken(*, clock: Callable[[], float] | None = None, sleeps: list | None = None,
                attempts: int = 3) -> KrakenBroker:
    sleep = sleeps.append if sleeps is not None else (lambda seconds: None)
    http = HttpClient(base_url=BASE, provider="kraken", sleep=sleep, retry=RetryPolicy(attempts=attempts))
    return KrakenBroker(KrakenConfig(api_key=API_KEY, api_secret=SECRET), http=http,
                        **({"clock": clock} if clock else {}))


def ticket(**changes) -> OrderTicket:
    fields = {"order_id": ORDER_ID, "client_order_id": "desk-1", "symbol": "XBTUSD", "side": Side.BUY,
              "order_type": OrderType.LIMIT, "quantity": Decimal("0.01"), "limit_price": Decimal("30000.0")}
    fields.update(changes)
    return OrderTicket(**fields)


def working(t: OrderTicket, *, filled: str = "0", txid: str | None = None, created_at: datetime = NOW) -> WorkingOrder:
    """The order as the engine hands it to ``sync``; ``txid`` is the broker id the desk recorded, if any."""
    return WorkingOrder(order_id=t.order_id, symbol=t.symbol, side=t.side, order_type=t.order_type,
                        quantity=t.quantity, filled_quantity=Decimal(filled), time_in_force=t.time_in_force,
                        created_at=created_at, limit_price=t.limit_price, client_order_id=t.client_order_id,
                        broker_order_id=txid)


def context(*, cash: str = "100000", position: str = "0") -> AccountContext:
    return AccountContext(figures=account_figures(cash=Decimal(cash), holdings=[]),
                          position_quantity=Decimal(position))


def request(**changes) -> OrderRequest:
    fields = {"symbol": "XBTUSD", "side": Side.BUY, "quantity": Decimal("0.01"), "order_type": OrderType.LIMIT,
              "limit_price": Decimal("30000.0")}
    fields.update(changes)
    return OrderRequest(**fields)


def sent(call: Call) -> str:
    """The body as sent, without its nonce."""
    return call.body.split("&", 1)[1]


@pytest.fixture
def venue():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield KrakenVenue(mock)


@pytest.fixture
def kraken(venue) -> KrakenBroker:
    return make_kraken()


# -- signing and nonces --------------------------------------------------------------------------------------

def test_the_signature_matches_krakens_documented_example():
    signature = kraken_signature(
        path="/0/private/AddOrder", nonce=1616492376594,
        postdata="nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25", secret=SECRET)
    assert signature == ("4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==")


def test_every_private_call_carries_the_key_and_a_signature_over_exactly_the_bytes_sent(venue, kraken):
    venue.stage("AddOrder", payload("trading_addorder"))
    kraken.submit_order(ticket())
    call = venue.calls_to("AddOrder")[0]
    assert call.headers["API-Key"] == API_KEY
    assert call.headers["API-Sign"] == kraken_signature(path="/0/private/AddOrder", nonce=call.fields["nonce"],
                                                        postdata=call.body, secret=SECRET)
    assert call.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert call.body.startswith(f"nonce={call.fields['nonce']}&")


def test_nonces_strictly_increase_even_within_one_millisecond_and_when_the_clock_steps_back():
    times = iter([1000.0, 1000.0, 1000.0, 999.0, 1000.0005, 1001.0])
    source = NonceSource(lambda: next(times))
    nonces = [source.next() for _ in range(6)]
    assert nonces == [1000000, 1000001, 1000002, 1000003, 1000004, 1001000]


def test_quick_successive_private_calls_send_increasing_nonces(venue):
    kraken = make_kraken(clock=lambda: 1772463600.0)         # a frozen clock: every call in the same millisecond
    venue.stage("Balance", payload("user_balance"))
    for _ in range(4):
        kraken.balances()
    nonces = [int(c.fields["nonce"]) for c in venue.calls_to("Balance")]
    assert nonces == sorted(set(nonces)) and len(nonces) == 4


def test_an_invalid_nonce_is_retried_once_with_a_fresh_nonce(venue, kraken):
    venue.stage("Balance", envelope("EAPI:Invalid nonce"), payload("user_balance"))
    assert kraken.balances()["XBT"] == Decimal("3.2223768244")
    first, second = venue.calls_to("Balance")
    assert int(second.fields["nonce"]) > int(first.fields["nonce"])


def test_an_invalid_nonce_twice_is_unauthorized(venue, kraken):
    venue.stage("Balance", envelope("EAPI:Invalid nonce"))
    with pytest.raises(Unauthorized) as raised:
        kraken.balances()
    assert raised.value.details == {"code": "KRAKEN_INVALID_NONCE"}
    assert len(venue.calls_to("Balance")) == 2


def test_a_wrong_secret_is_refused_by_the_venue_as_an_invalid_signature(venue):
    other = "a2V5" * 16
    http = HttpClient(base_url=BASE, provider="kraken", sleep=lambda s: None)
    kraken = KrakenBroker(KrakenConfig(api_key=API_KEY, api_secret=other), http=http)
    with pytest.raises(Unauthorized):
        kraken.balances()


def test_the_credentials_never_show_in_the_config_repr():
    text = repr(KrakenConfig(api_key=API_KEY, api_secret=SECRET))
    assert SECRET not in text and API_KEY not in text


# -- errors ------------------------------------------------------------------------------------------------

PLACING = {
    "EOrder:Insufficient funds": (OrderRejected, "INSUFFICIENT_BALANCE"),
    "EOrder:Margin allowance exceeded": (OrderRejected, "INSUFFICIENT_MARGIN"),
    "EOrder:Order minimum not met": (OrderRejected, "INVALID_QUANTITY"),
    "EOrder:Invalid price": (OrderRejected, "INVALID_PRICE"),
    "EGeneral:Invalid arguments:price": (OrderRejected, "INVALID_PRICE"),
    "EGeneral:Invalid arguments:price2": (OrderRejected, "INVALID_PRICE"),
    "EGeneral:Invalid arguments:volume": (OrderRejected, "INVALID_QUANTITY"),
    "EGeneral:Invalid arguments:order_qty": (OrderRejected, "INVALID_QUANTITY"),
    "EGeneral:Invalid arguments": (OrderRejected, "ORDER_REJECTED"),
    "EGeneral:Invalid arguments:ordertype": (OrderRejected, "ORDER_REJECTED"),
    "EQuery:Unknown asset pair": (OrderRejected, "SYMBOL_NOT_TRADEABLE"),
    "EOrder:Unknown order": (OrderNotFound, "ORDER_NOT_FOUND"),
    "EOrder:Orders limit exceeded": (RateLimited, "RATE_LIMITED"),
    "EOrder:Rate limit exceeded": (RateLimited, "RATE_LIMITED"),
    "EAPI:Rate limit exceeded": (RateLimited, "RATE_LIMITED"),
    "EService:Throttled: 1772463610": (RateLimited, "RATE_LIMITED"),
    "EAPI:Invalid key": (Unauthorized, "UNAUTHORIZED"),
    "EAPI:Invalid signature": (Unauthorized, "UNAUTHORIZED"),
    "EAPI:Invalid nonce": (Unauthorized, "UNAUTHORIZED"),
    "EGeneral:Permission denied": (Unauthorized, "UNAUTHORIZED"),
    "EGeneral:Temporary lockout": (ProviderUnavailable, "PROVIDER_UNAVAILABLE"),
    "EService:Unavailable": (ProviderUnavailable, "PROVIDER_UNAVAILABLE"),
    "EService:Busy": (ProviderUnavailable, "PROVIDER_UNAVAILABLE"),
    "EService:Deadline elapsed": (ProviderUnavailable, "PROVIDER_UNAVAILABLE"),
    "EGeneral:Internal error": (ProviderError, "PROVIDER_ERROR"),
}


def test_every_recorded_error_envelope_has_an_expectation():
    assert set(payload("errors_envelope")) == set(PLACING)
    prefixes = {prefix for prefix, _, _ in KRAKEN_ERRORS}
    assert all(any(error.startswith(p) for p in prefixes) for error in PLACING)


@pytest.mark.parametrize("error", list(PLACING))
def test_an_error_answered_to_an_order_maps_to_the_desk_error(venue, error):
    kraken = make_kraken(clock=lambda: 1772463600.0)
    venue.stage("AddOrder", envelope(error))
    expected, code = PLACING[error]
    with pytest.raises(expected) as raised:
        kraken.submit_order(ticket())
    assert raised.value.code == code
    if expected is OrderRejected:
        assert raised.value.status == 422
        assert raised.value.details["kraken_error"] == error
    if error.startswith("EService:Throttled"):
        assert raised.value.details["retry_after_seconds"] == 10


@pytest.mark.parametrize("error, expected", [
    ("EQuery:Unknown asset pair", SymbolNotFound),
    ("EGeneral:Invalid arguments", InvalidRequest),
    ("EGeneral:Invalid arguments:ordertype", InvalidRequest),
    ("EService:Unavailable", ProviderUnavailable),
    ("EAPI:Rate limit exceeded", RateLimited),
    ("EGeneral:Internal error", ProviderError),
])
def test_an_error_answered_outside_order_entry_is_not_a_rejection(venue, kraken, error, expected):
    venue.stage("Ticker", envelope(error))
    with pytest.raises(expected):
        kraken.quote("XBTUSD", now=NOW)


def test_an_unknown_order_on_cancel_is_order_not_found(venue, kraken):
    venue.stage("CancelOrder", envelope("EOrder:Unknown order"))
    with pytest.raises(OrderNotFound) as raised:
        kraken.cancel_order(ticket())
    assert raised.value.details == {"resource": "order", "id": ORDER_ID}


def test_warnings_alone_are_not_errors(venue, kraken):
    venue.stage("Balance", {"error": ["WGeneral:Deprecated"], "result": {"ZUSD": "1.5"}})
    assert kraken.balances() == {"USD": Decimal("1.5")}


def test_a_non_json_gateway_error_goes_through_the_status_mapping(venue, kraken):
    venue.stage("AddOrder", (403, "<html>Forbidden</html>"))
    with pytest.raises(OrderRejected):
        kraken.submit_order(ticket())


# -- request bodies ----------------------------------------------------------------------------------------

CL = f"&oflags=fciq&cl_ord_id={ORDER_ID}"


@pytest.mark.parametrize("changes, body", [
    ({"order_type": OrderType.MARKET, "limit_price": None},
     "pair=XBTUSD&type=buy&ordertype=market&volume=0.01" + CL),
    ({}, "pair=XBTUSD&type=buy&ordertype=limit&volume=0.01&price=30000" + CL),
    ({"post_only": True}, f"pair=XBTUSD&type=buy&ordertype=limit&volume=0.01&price=30000&oflags=post%2Cfciq"
                          f"&cl_ord_id={ORDER_ID}"),
    ({"side": Side.SELL, "order_type": OrderType.STOP, "limit_price": None, "stop_price": Decimal("29000.5")},
     "pair=XBTUSD&type=sell&ordertype=stop-loss&volume=0.01&price=29000.5" + CL),
    ({"side": Side.SELL, "order_type": OrderType.STOP_LIMIT, "stop_price": Decimal("29000"),
      "limit_price": Decimal("28900")},
     "pair=XBTUSD&type=sell&ordertype=stop-loss-limit&volume=0.01&price=29000&price2=28900" + CL),
    ({"side": Side.SELL, "order_type": OrderType.TRAILING_STOP, "limit_price": None,
      "trailing_distance": Decimal("100"), "trailing_type": TrailingType.ABSOLUTE},
     "pair=XBTUSD&type=sell&ordertype=trailing-stop&volume=0.01&price=%2B100" + CL),
    ({"side": Side.SELL, "order_type": OrderType.TRAILING_STOP, "limit_price": None,
      "trailing_distance": Decimal("2.5"), "trailing_type": TrailingType.PERCENT},
     "pair=XBTUSD&type=sell&ordertype=trailing-stop&volume=0.01&price=%2B2.5%25" + CL),
    ({"time_in_force": TimeInForce.IOC},
     "pair=XBTUSD&type=buy&ordertype=limit&volume=0.01&price=30000&timeinforce=IOC" + CL),
    ({"time_in_force": TimeInForce.DAY},     # GTD to the next 00:00 UTC (2026-03-03)
     "pair=XBTUSD&type=buy&ordertype=limit&volume=0.01&price=30000&timeinforce=GTD&expiretm=1772496000" + CL),
])
def test_each_order_type_is_sent_as_kraken_expects(venue, changes, body):
    kraken = make_kraken(clock=lambda: NOW.timestamp())
    venue.stage("AddOrder", payload("trading_addorder"))
    ack = kraken.submit_order(ticket(**changes))
    assert sent(venue.calls_to("AddOrder")[0]) == body
    assert (ack.broker_order_id, ack.status) == ("OU22CG-KLAF2-FWUDD7", OrderStatus.OPEN)


# ccxt ts/src/test/static/request/kraken.json (createOrder), nonce dropped
@pytest.mark.parametrize("changes, ccxt_body", [
    ({"symbol": "LTCUSDT", "order_type": OrderType.MARKET, "quantity": Decimal("0.1"), "limit_price": None},
     "pair=LTCUSDT&type=buy&ordertype=market&volume=0.1"),
    ({"symbol": "LTCUSDT", "side": Side.SELL, "order_type": OrderType.MARKET, "quantity": Decimal("0.1"),
      "limit_price": None}, "pair=LTCUSDT&type=sell&ordertype=market&volume=0.1"),
    ({"symbol": "LTCUSDT", "side": Side.SELL, "order_type": OrderType.STOP, "quantity": Decimal("0.1"),
      "limit_price": None, "stop_price": Decimal("55")},
     "pair=LTCUSDT&type=sell&ordertype=stop-loss&volume=0.1&price=55"),
    ({"symbol": "LTCUSDT", "side": Side.SELL, "order_type": OrderType.STOP_LIMIT, "quantity": Decimal("0.1"),
      "limit_price": Decimal("54"), "stop_price": Decimal("55")},
     "pair=LTCUSDT&type=sell&ordertype=stop-loss-limit&volume=0.1&price=55&price2=54"),
])
def test_bodies_match_ccxts_recorded_wire_bodies_apart_from_our_fee_flag_and_client_id(changes, ccxt_body):
    fields = to_kraken_order(ticket(**changes), now=NOW)
    ours = "&".join(f"{k}={v}" for k, v in fields if k not in ("oflags", "cl_ord_id"))
    assert ours == ccxt_body


def test_fill_or_kill_is_not_offered_by_kraken(kraken):
    with pytest.raises(Unsupported):
        kraken.submit_order(ticket(time_in_force=TimeInForce.FOK))
    with pytest.raises(Unsupported):
        kraken.check_order(request(time_in_force=TimeInForce.FOK), context=context(), now=NOW)


def test_client_ids_are_uuids_or_short_text():
    assert kraken_client_id(ORDER_ID) == ORDER_ID
    assert kraken_client_id("arb-20240509-00010") == "arb-20240509-00010"
    long_id = kraken_client_id("a-client-order-id-longer-than-eighteen")
    assert len(long_id) == 36 and long_id == kraken_client_id("a-client-order-id-longer-than-eighteen")


# -- retries -----------------------------------------------------------------------------------------------

def test_a_public_call_is_retried_with_backoff_after_a_503(venue):
    sleeps: list[float] = []
    kraken = make_kraken(sleeps=sleeps)
    venue.stage("Ticker", (503, "busy"), payload("public_ticker"))
    assert kraken.quote("XBTUSD", now=NOW).ask == Decimal("3537.5")
    assert len(venue.calls_to("Ticker")) == 2
    assert len(sleeps) == 1 and 0.18 <= sleeps[0] <= 0.32


def test_a_retry_after_header_is_honoured(venue):
    sleeps: list[float] = []
    kraken = make_kraken(sleeps=sleeps)
    venue.stage("Ticker", (429, "slow down", {"Retry-After": "2"}), payload("public_ticker"))
    kraken.quote("XBTUSD", now=NOW)
    assert sleeps == [2.0]


def test_a_read_only_private_call_is_retried_with_a_fresh_signature(venue):
    sleeps: list[float] = []
    kraken = make_kraken(sleeps=sleeps)
    venue.stage("Balance", (502, "bad gateway"), payload("user_balance"))
    assert kraken.balances()["USD"] == Decimal("2970172.7962")
    first, second = venue.calls_to("Balance")
    assert first.fields["nonce"] != second.fields["nonce"] and len(sleeps) == 1


def test_an_order_is_never_blindly_resent(venue):
    sleeps: list[float] = []
    kraken = make_kraken(sleeps=sleeps)
    venue.stage("AddOrder", (503, "busy"), payload("trading_addorder"))
    with pytest.raises(ProviderUnavailable):
        kraken.submit_order(ticket())
    assert len(venue.calls_to("AddOrder")) == 1 and sleeps == []


def test_a_connection_failure_on_a_read_is_retried_then_reported_unavailable(venue):
    sleeps: list[float] = []
    kraken = make_kraken(sleeps=sleeps)
    venue.stage("Ticker", requests.ConnectionError("reset"))
    with pytest.raises(ProviderUnavailable):
        kraken.quote("XBTUSD", now=NOW)
    assert len(venue.calls_to("Ticker")) == 3 and len(sleeps) == 2


# -- configuration -----------------------------------------------------------------------------------------

def test_missing_credentials_are_listed_together(monkeypatch):
    monkeypatch.delenv("KRAKEN_API_KEY", raising=False)
    monkeypatch.delenv("KRAKEN_API_SECRET", raising=False)
    with pytest.raises(ImproperlyConfigured) as raised:
        build_kraken_broker()
    text = str(raised.value)
    assert "GATEWAY_PROVIDER=kraken" in text
    assert "KRAKEN_API_KEY: NOT SET" in text and "KRAKEN_API_SECRET: NOT SET" in text


def test_one_missing_credential_still_shows_both(monkeypatch):
    monkeypatch.setenv("KRAKEN_API_KEY", API_KEY)
    monkeypatch.delenv("KRAKEN_API_SECRET", raising=False)
    with pytest.raises(ImproperlyConfigured) as raised:
        build_kraken_broker()
    assert "KRAKEN_API_KEY: set" in str(raised.value) and "KRAKEN_API_SECRET: NOT SET" in str(raised.value)


def test_the_registry_builds_a_kraken_broker_from_the_environment(monkeypatch):
    monkeypatch.setenv("KRAKEN_API_KEY", API_KEY)
    monkeypatch.setenv("KRAKEN_API_SECRET", SECRET)
    monkeypatch.delenv("KRAKEN_BASE_URL", raising=False)
    broker = get_broker("kraken")
    assert isinstance(broker, KrakenBroker) and broker.name == "kraken" and broker.answers_at_once is False
    assert broker.http.base_url == "https://api.kraken.com"


def test_a_secret_that_is_not_base64_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("KRAKEN_API_KEY", API_KEY)
    monkeypatch.setenv("KRAKEN_API_SECRET", "not base64!")
    with pytest.raises(ImproperlyConfigured, match="KRAKEN_API_SECRET"):
        build_kraken_broker()


def test_capabilities_are_truthful(kraken):
    caps = kraken.capabilities
    assert caps.platform == "kraken" and caps.bracket_strategy is BracketStrategy.PENDING
    assert "bracket_orders" not in caps.features and "oco" not in caps.features
    assert "short_selling" not in caps.features and "reduce_only" not in caps.features
    assert set(caps.supported_order_types) == set(OrderType)


# -- reference data, quotes, bars, status --------------------------------------------------------------------

def test_the_instrument_comes_from_asset_pairs_and_is_cached(venue, kraken):
    instrument = kraken.instrument("XBTUSD")
    assert (instrument.tick_size, instrument.quantity_step) == (Decimal("0.1"), Decimal("1E-8"))
    assert (instrument.min_quantity, instrument.min_notional) == (Decimal("0.0001"), Decimal("0.5"))
    assert (instrument.quote_currency, instrument.commission_bps, instrument.can_short) == ("USD", 26, False)
    assert kraken.instrument("XBTUSD") is instrument
    assert venue.calls_to("AssetPairs")[0].fields == {"pair": "XBTUSD"} and len(venue.calls_to("AssetPairs")) == 1


def test_an_unknown_pair_is_symbol_not_found(kraken):
    with pytest.raises(SymbolNotFound):
        kraken.instrument("NOPEUSD")


def test_a_quote_is_read_from_the_ticker(kraken):
    quote = kraken.quote("XBTUSD", now=NOW)
    assert (quote.bid, quote.ask, quote.last) == (Decimal("3537.4"), Decimal("3537.5"), Decimal("3537.5"))
    assert (quote.bid_size, quote.ask_size, quote.volume) == (Decimal("16"), Decimal("1"), Decimal("4009.69918350"))
    assert quote.timestamp == NOW and quote.provider == "kraken"


def test_bars_come_from_ohlc_with_the_interval_in_minutes(venue, kraken):
    venue.stage("OHLC", payload("public_ohlc"))
    end = datetime.fromtimestamp(1688671380, UTC)
    bars = kraken.bars("XBTUSD", timeframe="1m", seconds=60, end=end, count=3)
    assert [b.timestamp.timestamp() for b in bars] == [1688671260, 1688671320, 1688671380]
    assert (bars[0].open, bars[0].high, bars[0].low, bars[0].close, bars[0].volume) == (
        Decimal("30304.5"), Decimal("30304.5"), Decimal("30300.0"), Decimal("30300.0"), Decimal("4.42996871"))
    assert venue.calls_to("OHLC")[0].fields == {"pair": "XBTUSD", "interval": "1", "since": str(1688671380 - 181)}


def test_a_timeframe_kraken_does_not_serve_is_unsupported(kraken):
    with pytest.raises(Unsupported):
        kraken.bars("XBTUSD", timeframe="2m", seconds=120, end=NOW, count=10)


@pytest.mark.parametrize("status, connected", [("online", True), ("post_only", True), ("maintenance", False)])
def test_status_follows_the_system_status(venue, kraken, status, connected):
    venue.stage("SystemStatus", answer({"status": status, "timestamp": "2026-03-02T15:00:00Z"}))
    assert kraken.status(now=NOW).connected is connected


def test_status_is_disconnected_when_kraken_does_not_answer(venue, kraken):
    venue.stage("SystemStatus", (503, "down"))
    assert kraken.status(now=NOW).connected is False


def test_balances_use_plain_asset_names(venue, kraken):
    venue.stage("Balance", payload("user_balance"))
    balances = kraken.balances()
    assert balances["XBT"] == Decimal("3.2223768244") and balances["USD"] == Decimal("2970172.7962")
    assert balances["XDAO"] == Decimal("100000.0000000000")


# -- pre-trade checks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, reason", [
    ({"quantity": Decimal("0.00005")}, "INVALID_QUANTITY"),                 # below ordermin 0.0001
    ({"quantity": Decimal("0.000100001")}, "INVALID_QUANTITY"),             # more than 8 lot decimals
    ({"limit_price": Decimal("30000.05")}, "INVALID_PRICE"),                # off the 0.1 tick
    ({"stop_loss": Decimal("29000.01")}, "INVALID_PRICE"),
    ({"take_profit": Decimal("31000.07")}, "INVALID_PRICE"),
    ({"quantity": Decimal("0.0001"), "limit_price": Decimal("1000.0")}, "INVALID_QUANTITY"),   # cost 0.1 < 0.5
    ({"symbol": "NOPEUSD"}, "SYMBOL_NOT_TRADEABLE"),
    ({"side": Side.SELL}, "INSUFFICIENT_BALANCE"),                          # spot: nothing held to sell
    ({"quantity": Decimal("10")}, "INSUFFICIENT_BALANCE"),                  # 300,000 USD > 100,000
    ({"side": Side.BUY, "reduce_only": True}, "REDUCE_ONLY_VIOLATED"),
])
def test_the_venue_rules_are_checked_before_anything_is_sent(venue, kraken, changes, reason):
    with pytest.raises(OrderRejected) as raised:
        kraken.check_order(request(**changes), context=context(), now=NOW)
    assert raised.value.reason == reason
    assert venue.calls_to("AddOrder") == []


def test_a_pair_kraken_does_not_trade_normally_is_refused(venue, kraken):
    pairs = payload("public_assetpairs")
    pairs["result"]["XXBTZUSD"]["status"] = "cancel_only"
    venue.stage("AssetPairs", lambda f: answer({"XXBTZUSD": pairs["result"]["XXBTZUSD"]}))
    with pytest.raises(OrderRejected) as raised:
        kraken.check_order(request(), context=context(), now=NOW)
    assert raised.value.reason == "SYMBOL_NOT_TRADEABLE"


def test_a_sell_within_the_holding_passes_and_a_limit_is_checked_at_its_price(kraken):
    assert kraken.check_order(request(side=Side.SELL), context=context(position="0.02"), now=NOW) == Decimal("30000.0")


def test_a_market_order_is_checked_at_the_touch(venue, kraken):
    reference = kraken.check_order(request(order_type=OrderType.MARKET, limit_price=None), context=context(), now=NOW)
    assert reference == Decimal("3537.5") and len(venue.calls_to("Ticker")) == 1


# -- cancel and modify -------------------------------------------------------------------------------------

def test_cancel_goes_by_our_client_id(venue, kraken):
    venue.stage("CancelOrder", payload("trading_cancelorder"))
    kraken.cancel_order(ticket())
    assert sent(venue.calls_to("CancelOrder")[0]) == f"cl_ord_id={ORDER_ID}"


def test_a_cancel_that_cancelled_nothing_is_order_not_found(venue, kraken):
    venue.stage("CancelOrder", answer({"count": 0}))
    with pytest.raises(OrderNotFound):
        kraken.cancel_order(ticket())


def test_modify_amends_in_place_by_client_id(venue, kraken):
    venue.stage("AmendOrder", payload("trading_amendorder"))
    kraken.modify_order(ticket(order_type=OrderType.STOP_LIMIT, stop_price=Decimal("29000")),
                        quantity=Decimal("0.02"), limit_price=Decimal("28900"), stop_price=Decimal("29100"))
    assert sent(venue.calls_to("AmendOrder")[0]) == (
        f"cl_ord_id={ORDER_ID}&order_qty=0.02&limit_price=28900&trigger_price=29100")


def test_modify_checks_the_tick_before_sending(venue, kraken):
    with pytest.raises(OrderRejected) as raised:
        kraken.modify_order(ticket(), limit_price=Decimal("30000.03"))
    assert raised.value.reason == "INVALID_PRICE" and venue.calls_to("AmendOrder") == []


def test_modify_maps_an_amend_refusal(venue, kraken):
    venue.stage("AmendOrder", envelope("EOrder:Invalid price"))
    with pytest.raises(OrderRejected) as raised:
        kraken.modify_order(ticket(), limit_price=Decimal("30000.1"))
    assert raised.value.reason == "INVALID_PRICE"


def test_a_trailing_distance_cannot_be_amended(kraken):
    with pytest.raises(Unsupported):
        kraken.modify_order(ticket(), trailing_distance=Decimal("50"))


# -- sync ------------------------------------------------------------------------------------------------

TXID = "OU22CG-KLAF2-FWUDD7"


def submitted(venue, kraken, **changes) -> OrderTicket:
    t = ticket(**changes)
    venue.stage("AddOrder", payload("trading_addorder"))
    kraken.submit_order(t)
    return t


@pytest.mark.parametrize("status, vol_exec, expected", [
    ("pending", "0", OrderStatus.PENDING),
    ("open", "0", OrderStatus.OPEN),
    ("open", "0.004", OrderStatus.PARTIALLY_FILLED),
    ("closed", "0.01", OrderStatus.FILLED),
    ("closed", "0.004", OrderStatus.CANCELLED),
    ("canceled", "0", OrderStatus.CANCELLED),
    ("canceled", "0.004", OrderStatus.CANCELLED),
    ("expired", "0", OrderStatus.EXPIRED),
    ("something-new", "0", OrderStatus.OPEN),
])
def test_the_status_table(status, vol_exec, expected):
    assert parse_kraken_status(status, volume=Decimal("0.01"), executed=Decimal(vol_exec)) is expected


def test_a_known_order_is_queried_by_txid_and_its_trades_become_fills(venue, kraken):
    t = submitted(venue, kraken)
    venue.stage("QueryOrders", answer({TXID: kraken_order(cl_ord_id=ORDER_ID, status="open", vol_exec="0.004",
                                                          trades=("TAAAAA-1", "TBBBBB-2"))}))
    venue.stage("QueryTrades", answer({
        "TBBBBB-2": kraken_trade(ordertxid=TXID, vol="0.001", price="29999.9", time=1772463601.0, maker=True),
        "TAAAAA-1": kraken_trade(ordertxid=TXID, vol="0.003", price="30000.0", fee="0.23", time=1772463600.0)}))
    reports = kraken.sync([working(t, txid=TXID)], now=NOW)
    assert [(r.kind, r.fill_id, r.quantity, r.price) for r in reports] == [
        (ReportKind.FILL, "TAAAAA-1", Decimal("0.003"), Decimal("30000.0")),
        (ReportKind.FILL, "TBBBBB-2", Decimal("0.001"), Decimal("29999.9"))]
    assert (reports[0].commission, reports[0].commission_currency, reports[0].is_maker) == (
        Decimal("0.23"), "USD", False)
    assert reports[1].is_maker and reports[0].timestamp == datetime.fromtimestamp(1772463600.0, UTC)
    assert venue.calls_to("QueryOrders")[0].fields["txid"] == TXID
    assert venue.calls_to("QueryOrders")[0].fields["trades"] == "true"
    assert venue.calls_to("QueryTrades")[0].fields["txid"] == "TAAAAA-1,TBBBBB-2"
    assert venue.calls_to("OpenOrders") == []


def test_no_growth_of_the_executed_volume_fetches_no_trades(venue, kraken):
    t = submitted(venue, kraken)
    venue.stage("QueryOrders", answer({TXID: kraken_order(cl_ord_id=ORDER_ID, vol_exec="0.004",
                                                          trades=("TAAAAA-1",))}))
    assert kraken.sync([working(t, filled="0.004", txid=TXID)], now=NOW) == []
    assert venue.calls_to("QueryTrades") == []


def test_a_partly_filled_order_cancelled_at_kraken_reports_its_fills_then_the_cancel(venue, kraken):
    t = submitted(venue, kraken)
    venue.stage("QueryOrders", answer({TXID: kraken_order(
        cl_ord_id=ORDER_ID, status="canceled", vol_exec="0.004", trades=("TAAAAA-1",), closetm=1772463700.0,
        reason="User requested")}))
    venue.stage("QueryTrades", answer({"TAAAAA-1": kraken_trade(ordertxid=TXID, vol="0.004", price="30000.0")}))
    reports = kraken.sync([working(t, txid=TXID)], now=NOW)
    assert [r.kind for r in reports] == [ReportKind.FILL, ReportKind.CANCELLED]
    assert reports[1].reason == "User requested"
    assert reports[1].timestamp == datetime.fromtimestamp(1772463700.0, UTC)


def test_an_ioc_closed_with_a_remainder_cancels_the_rest(venue, kraken):
    t = submitted(venue, kraken, time_in_force=TimeInForce.IOC)
    venue.stage("QueryOrders", answer({TXID: kraken_order(cl_ord_id=ORDER_ID, status="closed", vol_exec="0.006",
                                                          trades=("TAAAAA-1",), closetm=1772463700.0)}))
    venue.stage("QueryTrades", answer({"TAAAAA-1": kraken_trade(ordertxid=TXID, vol="0.006", price="30000.0")}))
    reports = kraken.sync([working(t, txid=TXID)], now=NOW)
    assert [r.kind for r in reports] == [ReportKind.FILL, ReportKind.CANCELLED]
    assert reports[1].reason == "closed at Kraken with 0.004 unfilled"


def test_an_expired_order_is_reported_expired(venue, kraken):
    t = submitted(venue, kraken)
    venue.stage("QueryOrders", answer({TXID: kraken_order(cl_ord_id=ORDER_ID, status="expired",
                                                          closetm=1772463700.0)}))
    assert [r.kind for r in kraken.sync([working(t, txid=TXID)], now=NOW)] == [ReportKind.EXPIRED]


def test_the_end_of_an_order_waits_until_all_its_trades_are_in_hand(venue, kraken):
    t = submitted(venue, kraken)
    venue.stage("QueryOrders", answer({TXID: kraken_order(
        cl_ord_id=ORDER_ID, status="canceled", vol_exec="0.006", trades=("TAAAAA-1", "TBBBBB-2"),
        closetm=1772463700.0)}))
    venue.stage("QueryTrades", answer({"TAAAAA-1": kraken_trade(ordertxid=TXID, vol="0.004", price="30000.0")}))
    assert [r.kind for r in kraken.sync([working(t, txid=TXID)], now=NOW)] == [ReportKind.FILL]


def test_fills_of_an_order_without_trade_ids_come_from_the_trades_history(venue, kraken):
    t = submitted(venue, kraken)
    history = payload("user_tradeshistory")
    history["result"]["trades"]["THVRQM-33VKH-UCI7BS"].update(ordertxid=TXID, vol="0.01000000")
    venue.stage("QueryOrders", answer({TXID: kraken_order(cl_ord_id=ORDER_ID, status="closed", vol_exec="0.01",
                                                          closetm=1772463700.0)}))
    venue.stage("TradesHistory", history)
    reports = kraken.sync([working(t, txid=TXID)], now=NOW)
    assert [(r.fill_id, r.quantity, r.price) for r in reports] == [
        ("THVRQM-33VKH-UCI7BS", Decimal("0.01000000"), Decimal("30010.00000"))]
    assert "start" in venue.calls_to("TradesHistory")[0].fields


def test_an_order_known_only_by_the_txid_the_desk_recorded_is_queried_by_it(venue, kraken):
    venue.stage("QueryOrders", answer({TXID: kraken_order(cl_ord_id=ORDER_ID, status="open")}))
    assert kraken.sync([working(ticket(), txid=TXID)], now=NOW) == []
    assert venue.calls_to("QueryOrders")[0].fields["txid"] == TXID and venue.calls_to("OpenOrders") == []


def test_an_order_whose_answer_was_lost_is_found_by_client_id_and_reported_accepted(venue, kraken):
    t = ticket()
    open_orders = payload("user_openorders")
    open_orders["result"]["open"]["OB5VMB-B4U2U-DK2WRW"]["cl_ord_id"] = "someone-else"
    venue.stage("OpenOrders", open_orders)
    venue.stage("ClosedOrders", answer({"closed": {"OXYZ12-ABCDE-FGHIJK": kraken_order(
        cl_ord_id=ORDER_ID, status="closed", vol_exec="0.01", trades=("TAAAAA-1",), closetm=1772463700.0)},
        "count": 1}))
    venue.stage("QueryTrades", answer({"TAAAAA-1": kraken_trade(ordertxid="OXYZ12-ABCDE-FGHIJK", vol="0.01",
                                                                price="30000.0")}))
    reports = kraken.sync([working(t)], now=NOW)
    assert [(r.kind, r.fill_id) for r in reports] == [(ReportKind.ACCEPTED, None), (ReportKind.FILL, "TAAAAA-1")]
    assert reports[0].extra == {"broker_order_id": "OXYZ12-ABCDE-FGHIJK"}
    assert venue.calls_to("ClosedOrders")[0].fields["cl_ord_id"] == ORDER_ID
    venue.stage("QueryOrders", answer({"OXYZ12-ABCDE-FGHIJK": kraken_order(cl_ord_id=ORDER_ID, status="closed",
                                                                           vol_exec="0.01", trades=("TAAAAA-1",))}))
    kraken.sync([working(t, filled="0.01")], now=NOW)               # learnt: now queried by txid
    assert venue.calls_to("QueryOrders")[0].fields["txid"] == "OXYZ12-ABCDE-FGHIJK"


@pytest.fixture
def nowhere(venue):
    venue.stage("OpenOrders", answer({"open": {}}))
    venue.stage("ClosedOrders", answer({"closed": {}, "count": 0}))


def test_an_unacknowledged_order_kraken_never_saw_is_rejected_once_it_cannot_be_in_flight(venue, kraken, nowhere):
    old = NOW - timedelta(minutes=3)
    (report,) = kraken.sync([working(ticket(), created_at=old)], now=NOW)
    assert report.kind is ReportKind.REJECTED and "never arrived" in report.reason


def test_a_young_unacknowledged_order_may_still_be_on_its_way(venue, kraken, nowhere):
    assert kraken.sync([working(ticket(), created_at=NOW - timedelta(seconds=30))], now=NOW) == []


def test_a_partly_filled_order_kraken_forgot_is_cancelled_not_rejected(venue, kraken, nowhere):
    (report,) = kraken.sync([working(ticket(), filled="0.004", created_at=NOW - timedelta(hours=1))], now=NOW)
    assert report.kind is ReportKind.CANCELLED


def test_an_acknowledged_order_that_cannot_be_found_is_never_declared_lost(venue, kraken, nowhere):
    venue.stage("QueryOrders", answer({}))
    assert kraken.sync([working(ticket(), txid=TXID, created_at=NOW - timedelta(days=1))], now=NOW) == []


def test_sync_with_nothing_working_calls_nobody(venue, kraken):
    assert kraken.sync([], now=NOW) == [] and venue.calls == []
