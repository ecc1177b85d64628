"""The desk on Kraken Spot, end to end against a venue it did not write: ``GATEWAY_PROVIDER=kraken`` with
``KRAKEN_BASE_URL`` pointed at ``tests.fakes.kraken`` (its own process on 127.0.0.1, which checks every signature,
holds balances for resting orders and fires its dead man's switch on a real timer). The desk's own code runs:
``/v1`` through Django's test client, the engine through ``engine_tick`` with its ``VenueWatch`` and the account's
lease; the last test runs real ``run_engine`` processes. What issue #13 asks of Kraken:

* ``/v1/account`` equals the venue's figures;
* a balance put there from outside appears in ``/v1/positions`` within one engine poll, marked external;
* a quantity that drifts raises ``POSITION_MISMATCH``;
* a bracket ends with exactly one resting stop at Kraken plus a take-profit the engine fires when the quote
  reaches it (stop cancelled, position sold), and no ``POSITION_UNPROTECTED``;
* the dead man's switch cancels at its timeout when the engine holding the lease stops re-arming it, unless a
  standby that takes the lease over re-arms it first;
* no connection leaves for a host the configuration did not name.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from orders import engine
from orders.brokers import get_broker, reset_broker_cache
from orders.engine import VenueWatch, engine_tick, lease_claim
from orders.models import Alert, ExitLeg, Order, Position, VenueState
from tests.builders import make_account
from tests.e2e.desk_process import running_desk, wait_for
from tests.fakes import FakeVenue
from tests.fakes.hosts import LOOPBACK, hosts_contacted
from tests.fakes.kraken import API_KEY, API_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

D = Decimal
J = "application/json"


@pytest.fixture(scope="module")
def fake():
    with FakeVenue("kraken") as venue:
        yield venue


def kraken_env(fake, **extra: str) -> dict[str, str]:
    return {"KRAKEN_API_KEY": API_KEY, "KRAKEN_API_SECRET": API_SECRET, "KRAKEN_BASE_URL": fake.url,
            "KRAKEN_WS_AUTH_URL": f"{fake.ws_url}/v2", "KRAKEN_QUOTE_ASSET": "USD", **extra}


class Desk:
    def __init__(self, *, fake, broker, account) -> None:
        self.fake, self.broker, self.account = fake, broker, account
        self.watch = VenueWatch(owner="engine-a")

    def tick(self, times: int = 1, *, watch: VenueWatch | None = None) -> None:
        for _ in range(times):
            engine_tick(accounts=[self.account], broker=self.broker, now=timezone.now(), venue=watch or self.watch)

    def state(self) -> dict:
        return _get(self.fake, "state")

    def open_orders(self) -> list[dict]:
        return self.state()["open_orders"]

    def requests(self) -> list[dict]:
        return _get(self.fake, "requests")


def _get(fake, what: str):
    return requests.get(f"{fake.url}/_fake/{what}", timeout=5).json()


@pytest.fixture
def make_desk(fake, dialled, monkeypatch, settings):
    def build(**extra_env: str) -> Desk:
        fake.control("reset")
        for name, value in kraken_env(fake, **extra_env).items():
            monkeypatch.setenv(name, value)
        if "KRAKEN_DEADMAN_SECONDS" not in extra_env:
            monkeypatch.setenv("KRAKEN_DEADMAN_SECONDS", "0")
        settings.GATEWAY_PROVIDER = "kraken"
        settings.DESK_VENUE_POLL_SECONDS = 0            # every engine tick is a poll of the venue's books
        reset_broker_cache()
        broker = get_broker()
        broker.http.sleep = lambda seconds: None
        broker.account_read_seconds = 0                 # every poll reads the account (the pacing is unit-tested)
        account = make_account(name="kraken-desk", cash=D("0"), broker=broker.name, is_default=True)
        return Desk(fake=fake, broker=broker, account=account)
    return build


@pytest.fixture
def desk(make_desk) -> Desk:
    return make_desk()


def buy_bracket(client, *, quantity: str = "0.01") -> str:
    response = client.post("/v1/orders", json.dumps({
        "symbol": "XBTUSD", "side": "BUY", "quantity": quantity, "order_type": "MARKET",
        "stop_loss": "29000", "take_profit": "31000"}), content_type=J)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def alerts(desk, kind) -> list[Alert]:
    return list(Alert.objects.filter(account=desk.account, kind=kind))


# -- the account and what it holds --------------------------------------------------------------------------

def test_v1_account_equals_the_venues_figures(desk, client):
    desk.fake.control("balance", asset="XBT", amount="0.02")
    desk.fake.control("external_order", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                      price="20000.0")          # holds 200 USD and its fee: the buying power is less than the cash
    body = client.get("/v1/account").json()
    venue = desk.state()["account"]
    assert (D(body["balance"]), D(body["equity"]), body["currency"]) == (
        D(venue["cash"]), D(venue["equity"]), "USD")
    assert D(body["margin_available"]) == D(venue["buying_power"]) == D("99799.4800")
    assert D(body["equity"]) == D("100000") + D("0.02") * D("30000")
    assert D(body["margin_used"]) == 0


def test_a_balance_put_there_from_outside_is_a_position_after_one_poll(desk, client):
    desk.tick()
    assert client.get("/v1/positions").json() == []
    desk.fake.control("balance", asset="SOL", amount="12.5")
    desk.tick()
    (position,) = client.get("/v1/positions").json()
    assert (position["symbol"], D(position["quantity"]), position["side"]) == ("SOLUSD", D("12.5"), "LONG")
    assert Position.objects.get(account=desk.account, symbol="SOLUSD").external
    assert not ExitLeg.objects.filter(symbol="SOLUSD").exists(), "no exit legs are invented for it"


def test_a_quantity_that_drifts_at_the_venue_raises_position_mismatch(desk):
    desk.fake.control("balance", asset="XBT", amount="0.5")
    desk.tick()
    desk.fake.control("balance", asset="XBT", amount="0.3")       # sold outside the desk
    desk.tick(2)                                                  # seen on two reads in a row
    (alert,) = alerts(desk, Alert.Kind.POSITION_MISMATCH)
    assert alert.symbol == "XBTUSD"
    assert (alert.details["desk_quantity"], alert.details["venue_quantity"]) == ("0.5", "0.3")


def test_an_order_placed_at_kraken_by_another_app_is_adopted_as_external(desk, client):
    desk.fake.control("external_order", pair="XBTUSD", type="buy", ordertype="limit", volume="0.002",
                      price="25000.0", userref=4242)
    desk.tick()
    (order,) = Order.objects.filter(account=desk.account, external=True)
    assert (order.symbol, order.side, order.quantity, order.limit_price, order.status) == (
        "XBTUSD", "BUY", D("0.002"), D("25000.0"), "OPEN")


# -- a bracket: one resting stop, an engine-fired take-profit ------------------------------------------------

def test_a_protected_position_can_be_closed_although_its_stop_holds_the_balance(desk, client):
    """Kraken holds the coin a resting stop would sell: the close cancels the stop first, or Kraken refuses it
    for insufficient funds."""
    entry_id = buy_bracket(client)
    desk.tick(3)
    assert len(desk.open_orders()) == 1

    closed = client.delete("/v1/positions/XBTUSD")
    assert closed.status_code == 200, closed.content
    desk.tick(3)
    assert desk.open_orders() == []
    assert D(desk.state()["balances"]["XXBT"]) == 0
    assert client.get("/v1/positions").json() == []
    assert {leg.status for leg in ExitLeg.objects.filter(entry_id=entry_id)} == {"CANCELLED"}
    assert not alerts(desk, Alert.Kind.POSITION_UNPROTECTED)


def test_a_bracket_rests_one_stop_and_its_take_profit_fires_on_the_quote(desk, client, dialled):
    entry_id = buy_bracket(client)
    desk.tick(3)
    entry = Order.objects.get(pk=entry_id)
    assert (entry.status, entry.filled_quantity) == ("FILLED", D("0.01"))
    (stop,) = desk.open_orders()
    assert (stop["descr"]["type"], stop["descr"]["ordertype"], stop["vol"], stop["descr"]["price"]) == (
        "sell", "stop-loss", "0.01000000", "29000.0"), "exactly one resting exit: the stop"
    assert desk.state()["held"]["XXBT"] == desk.state()["balances"]["XXBT"] == "0.0100000000"
    take_profit = ExitLeg.objects.get(entry=entry, role="take_profit")
    assert (take_profit.status, take_profit.emulated) == ("PLACED", True)
    (position,) = client.get("/v1/positions").json()
    assert D(position["quantity"]) == D("0.01") == D(desk.state()["balances"]["XXBT"])

    desk.fake.control("price", pair="XBTUSD", price="30500.0")
    desk.tick(2)
    assert len(desk.open_orders()) == 1, "below the take-profit nothing moves"

    desk.fake.control("price", pair="XBTUSD", price="31000.0")
    desk.tick(3)
    assert desk.open_orders() == [], "the stop was cancelled"
    closed = {o["descr"]["ordertype"]: o for o in desk.state()["closed_orders"] if o["descr"]["type"] == "sell"}
    assert closed["stop-loss"]["status"] == "canceled"
    assert (closed["market"]["status"], closed["market"]["vol_exec"]) == ("closed", "0.01000000")
    assert D(desk.state()["balances"]["XXBT"]) == 0
    assert client.get("/v1/positions").json() == []
    legs = {leg.role: leg.status for leg in ExitLeg.objects.filter(entry=entry)}
    assert legs == {"stop_loss": "CANCELLED", "take_profit": "FILLED"}
    assert alerts(desk, Alert.Kind.POSITION_UNPROTECTED) == []
    assert alerts(desk, Alert.Kind.POSITION_MISMATCH) == []

    host = desk.fake.url.removeprefix("http://")
    assert {r["host"] for r in desk.requests() if r["method"] != "WS"} == {host}
    assert set(dialled) <= set(LOOPBACK), "no connection left for a host the configuration did not name"


def test_a_stop_that_triggers_at_kraken_closes_the_position_and_ends_the_take_profit(desk, client):
    entry_id = buy_bracket(client)
    desk.tick(3)
    desk.fake.control("price", pair="XBTUSD", price="28900.0")
    desk.tick(3)
    legs = {leg.role: leg.status for leg in ExitLeg.objects.filter(entry_id=entry_id)}
    assert legs == {"stop_loss": "FILLED", "take_profit": "CANCELLED"}
    assert client.get("/v1/positions").json() == []
    assert desk.open_orders() == []
    assert alerts(desk, Alert.Kind.POSITION_UNPROTECTED) == []


def test_the_engines_stream_and_every_call_go_to_the_configured_hosts_only(desk, client):
    """The engine's stream thread (``broker.watch``) dials the configured WebSocket address with a token from the
    configured REST host and wakes the engine on the entry's fill; no socket of this process goes anywhere else."""
    stop, woken = threading.Event(), threading.Event()
    with hosts_contacted() as contacted:
        watcher = threading.Thread(target=desk.broker.watch, kwargs={"wake": woken.set, "stop": stop}, daemon=True)
        watcher.start()
        wait_for(lambda: any(r["method"] == "WS" for r in desk.requests()), timeout=10, what="the stream to connect")
        time.sleep(0.3)                                        # its subscription answered
        buy_bracket(client)
        assert woken.wait(10), "the entry's execution woke the engine"
        desk.tick(3)
        stop.set()
        watcher.join(timeout=10)
    assert contacted.hosts() <= {"127.0.0.1"}
    rest, ws = desk.fake.url.removeprefix("http://"), desk.fake.ws_url.removeprefix("ws://")
    assert {(r["method"] == "WS", r["host"]) for r in desk.requests()} == {(False, rest), (True, ws)}
    assert any(r["path"] == "/0/private/GetWebSocketsToken" for r in desk.requests())
    assert len(desk.open_orders()) == 1


# -- the dead man's switch ------------------------------------------------------------------------------------

def test_the_lease_holder_arms_the_switch_and_kraken_cancels_at_its_timeout_once_it_stops(make_desk, client):
    desk = make_desk(KRAKEN_DEADMAN_SECONDS="2")
    assert lease_claim(account=desk.account, owner="engine-a")
    buy_bracket(client)
    desk.tick(3)
    assert len(desk.open_orders()) == 1
    deadman = desk.state()["deadman"]
    assert (deadman["armed"], deadman["timeout"]) == (True, 2)
    state = VenueState.objects.get(account=desk.account)
    assert (state.deadman_owner, state.deadman_seconds) == ("engine-a", 2)

    time.sleep(3)                                   # the engine is gone: nothing re-arms it
    deadman = desk.state()["deadman"]
    assert len(deadman["fired"]) == 1 and desk.open_orders() == []


def test_a_standby_that_takes_the_lease_over_re_arms_the_switch_in_time(make_desk, client, monkeypatch):
    monkeypatch.setattr(engine, "LEASE_SECONDS", 1)
    desk = make_desk(KRAKEN_DEADMAN_SECONDS="3")
    assert lease_claim(account=desk.account, owner="engine-a")
    buy_bracket(client)
    desk.tick(3)
    armed_until = desk.state()["deadman"]["trigger_at"]
    # engine-a dies here; engine-b stands by until the lease lapses, then acts for the account
    standby = VenueWatch(owner="engine-b")
    wait_for(lambda: lease_claim(account=desk.account, owner="engine-b"), timeout=5, interval=0.2,
             what="the standby to take the lease over")
    desk.tick(watch=standby)
    assert desk.state()["deadman"]["trigger_at"] > armed_until
    while time.time() < armed_until + 1.5:            # past the moment engine-a's arming would have fired
        desk.tick(watch=standby)
        time.sleep(0.5)
    assert desk.state()["deadman"]["fired"] == []
    assert len(desk.open_orders()) == 1, "the stop still rests"
    assert VenueState.objects.get(account=desk.account).deadman_owner == "engine-b"


# -- real engine processes -------------------------------------------------------------------------------------

def test_killing_the_lease_holding_engine_leaves_the_switch_to_the_standby_then_to_kraken(fake, tmp_path):
    """Two ``run_engine`` processes for one Kraken account: the leader arms the switch (20 s, re-armed every
    ~7 s); SIGKILLed, its lease lapses after 6 s and the standby takes over and re-arms before the leader's
    last arming runs out, so nothing is cancelled. SIGKILL the standby too, and Kraken cancels every order at
    the timeout."""
    fake.control("reset")
    with running_desk(tmp_path, GATEWAY_PROVIDER="kraken", **kraken_env(fake, KRAKEN_DEADMAN_SECONDS="20")) as desk:
        fake.control("external_order", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                     price="20000.0")
        leader = desk.start("run_engine", log_name="engine-1")
        wait_for(lambda: _get(fake, "state")["deadman"]["armed"], timeout=30, what="the leader to arm the switch")
        standby = desk.start("run_engine", "--wait", log_name="engine-2")
        wait_for(lambda: "standing by" in desk.log("engine-2"), timeout=30, what="the standby to stand by")
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(timeout=5)
        killed_at = time.time()
        last_trigger = _get(fake, "state")["deadman"]["trigger_at"]
        wait_for(lambda: "takes over" in desk.log("engine-2"), timeout=20, what="the standby to take over")
        wait_for(lambda: _get(fake, "state")["deadman"]["trigger_at"] > last_trigger, timeout=10,
                 what="the standby to re-arm the switch")
        time.sleep(max(0.0, last_trigger - time.time()) + 1)
        state = _get(fake, "state")
        assert state["deadman"]["fired"] == [] and len(state["open_orders"]) == 1, desk.log("engine-2")
        assert time.time() - killed_at > 6

        os.killpg(standby.pid, signal.SIGKILL)
        standby.wait(timeout=5)
        wait_for(lambda: _get(fake, "state")["deadman"]["fired"], timeout=25, interval=0.5,
                 what="Kraken's switch to fire with no engine left")
        assert _get(fake, "state")["open_orders"] == []
        hosts = {r["host"] for r in _get(fake, "requests")}
        assert hosts <= {fake.url.removeprefix("http://"), fake.ws_url.removeprefix("ws://")}
