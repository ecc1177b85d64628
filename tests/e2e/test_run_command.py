"""The desk as a user runs it: ``manage.py migrate``, ``desk_setup``, then ``manage.py rundesk``
(daphne + engine) on a free port with its own DESK_VAR_DIR, driven over real HTTP by the
examples of the Trading Gateway guide (plain ``requests``) and by the ``tektii`` SDK.

Every wait is bounded and every process is killed in teardown, whatever happens."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from tektii import OrderStatus, Side, TradingGateway

from tests.e2e.second_factor import SETUP, authenticators_of, pass_second_step_http

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
HANDLE_STATUSES = {"PENDING", "OPEN", "FILLED"}


# --- running the desk ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition: Callable[[], object], *, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll until ``condition()`` is truthy; return its value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a child its parent has not reaped yet counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def desk_env(var_dir: Path, port: int) -> dict[str, str]:
    """The caller's environment without any desk setting, plus a private var dir and port."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DESK_", "GATEWAY_", "PAPER_", "ENGINE_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"DESK_VAR_DIR": str(var_dir), "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port),
                "PAPER_STARTING_CASH": "1000000", "PAPER_MARKET_HOURS": "always", "PYTHONUNBUFFERED": "1"})
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@dataclass
class Desk:
    process: subprocess.Popen
    port: int
    env: dict[str, str]
    var_dir: Path
    setup_output: str = ""           # what desk_setup printed: the logins' passwords and the API key, once

    @property
    def host(self) -> str:
        return self.env["GATEWAY_HOST"]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return "".join((self.var_dir / name).read_text() for name in ("rundesk.out", "rundesk.err"))


def start_desk(tmp: Path, *, host: str = "127.0.0.1") -> Desk:
    """migrate, desk_setup and ``manage.py rundesk`` serving on ``host`` (GATEWAY_HOST), ready to answer."""
    port = free_port()
    env = {**desk_env(tmp, port), "GATEWAY_HOST": host}
    for args in (("migrate", "--no-input", "-v0"), ("desk_setup",)):
        done = manage(env, *args)
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    setup_output = done.stdout
    with open(tmp / "rundesk.out", "w") as out, open(tmp / "rundesk.err", "w") as err:
        # its own process group, so teardown can kill rundesk, daphne and the engine together
        process = subprocess.Popen([PYTHON, "manage.py", "rundesk"], cwd=ROOT, env=env, stdout=out, stderr=err,
                                   start_new_session=True)
    desk = Desk(process, port, env, tmp, setup_output)

    def ready() -> bool:
        assert process.poll() is None, f"rundesk exited with {process.returncode}:\n{desk.log()}"
        try:
            return requests.get(f"{desk.url}/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(ready, timeout=45, interval=0.2, what="/readyz")
    except BaseException:
        stop_desk(desk)
        raise
    return desk


def stop_desk(desk: Desk) -> None:
    """Kill whatever is left of the desk's process group (a no-op after a clean shutdown)."""
    try:
        os.killpg(desk.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        desk.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        desk.process.kill()


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    running = start_desk(tmp_path_factory.mktemp("desk"))
    try:
        yield running
    finally:
        stop_desk(running)


@pytest.fixture
def posted(monkeypatch) -> list[requests.Response]:
    """Every response ``requests.post`` returns during the test, so the guide's examples, which
    return only the body, can be checked for their status code too."""
    responses: list[requests.Response] = []
    original = requests.post

    def recording_post(*args, **kwargs):
        response = original(*args, **kwargs)
        responses.append(response)
        return response

    monkeypatch.setattr(requests, "post", recording_post)
    return responses


def order_of(desk: Desk, order_id: str) -> dict:
    response = requests.get(f"{desk.url}/v1/orders/{order_id}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def orders_with_client_id(desk: Desk, client_order_id: str) -> list[dict]:
    response = requests.get(f"{desk.url}/v1/orders", params={"client_order_id": client_order_id}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


# --- (a) the guide's Python examples, verbatim but for the base URL --------------------------------------
# From /work/shared/reference/gateway/placing-orders.txt ("Market Orders", "Limit Orders", "Stop Loss
# Orders (Bracket Orders)"); only "http://localhost:8080" became the desk's URL.

def guide_examples(base_url: str) -> dict[str, Callable]:
    def place_market_order(symbol: str, side: str, quantity: str) -> dict:
        url = f"{base_url}/v1/orders"
        order = {
            "symbol": symbol,
            "side": side,
            "quantity": quantity,
            "order_type": "MARKET"
        }
        response = requests.post(url, json=order)
        response.raise_for_status()
        return response.json()

    def place_limit_order(symbol: str, side: str, quantity: str, limit_price: str) -> dict:
        url = f"{base_url}/v1/orders"
        order = {
            "symbol": symbol,
            "side": side,
            "quantity": quantity,
            "order_type": "LIMIT",
            "limit_price": limit_price,
            "time_in_force": "GTC"  # Good Till Cancelled
        }
        response = requests.post(url, json=order)
        response.raise_for_status()
        return response.json()

    def place_bracket_order(
        symbol: str,
        side: str,
        quantity: str,
        stop_loss: str,
        take_profit: str = None
    ) -> dict:
        url = f"{base_url}/v1/orders"
        order = {
            "symbol": symbol,
            "side": side,
            "quantity": quantity,
            "order_type": "MARKET",
            "stop_loss": stop_loss,
        }
        if take_profit:
            order["take_profit"] = take_profit
        response = requests.post(url, json=order)
        response.raise_for_status()
        return response.json()

    return {"market": place_market_order, "limit": place_limit_order, "bracket": place_bracket_order}


def assert_is_handle(result: dict) -> None:
    assert isinstance(result["id"], str) and result["id"]
    assert result["status"] in HANDLE_STATUSES


def test_the_guides_market_order_is_accepted_and_filled_by_the_running_engine(desk, posted):
    place_market_order = guide_examples(desk.url)["market"]

    # Buy 100 shares of AAPL
    result = place_market_order("AAPL", "BUY", "100")
    print(f"Order ID: {result['id']}, Status: {result['status']}")

    assert [r.status_code for r in posted] == [201]
    assert_is_handle(result)
    assert "client_order_id" not in result
    filled = wait_for(lambda: (o := order_of(desk, result["id"]))["status"] == "FILLED" and o,
                      timeout=5, what="the market order to fill")
    assert filled["filled_quantity"] == "100"
    assert filled["remaining_quantity"] == "0"
    assert float(filled["average_fill_price"]) > 0


def test_the_guides_limit_order_is_accepted_as_a_good_till_cancelled_buy_at_150(desk, posted):
    place_limit_order = guide_examples(desk.url)["limit"]

    # Buy AAPL at $150 or better
    result = place_limit_order("AAPL", "BUY", "100", "150.00")
    print(f"Limit order placed: {result['id']}")

    assert [r.status_code for r in posted] == [201]
    assert_is_handle(result)
    order = order_of(desk, result["id"])
    assert (order["order_type"], order["side"], order["quantity"]) == ("LIMIT", "BUY", "100")
    assert order["limit_price"] == "150"
    assert order["time_in_force"] == "GTC"


def test_the_guides_bracket_orders_get_their_stop_loss_and_take_profit_legs_once_filled(desk, posted):
    place_bracket_order = guide_examples(desk.url)["bracket"]

    # Buy AAPL with stop loss at $145
    result = place_bracket_order("AAPL", "BUY", "100", stop_loss="145.00")
    print(f"Bracket order placed: {result['id']}")
    stop_only = result

    # Buy with both stop loss and take profit
    result = place_bracket_order(
        "AAPL", "BUY", "100",
        stop_loss="145.00",
        take_profit="165.00"
    )

    assert [r.status_code for r in posted] == [201, 201]
    for handle in (stop_only, result):
        assert_is_handle(handle)
    entry = order_of(desk, result["id"])
    assert (entry["stop_loss"], entry["take_profit"]) == ("145", "165")

    def legs_of(entry_id: str, *suffixes: str) -> dict[str, dict] | None:
        found = {s: orders_with_client_id(desk, f"{entry_id}-{s}") for s in suffixes}
        return {s: legs[0] for s, legs in found.items()} if all(found.values()) else None

    legs = wait_for(lambda: legs_of(result["id"], "sl", "tp"), timeout=10, what="the bracket's -sl/-tp legs")
    assert order_of(desk, result["id"])["status"] == "FILLED"
    stop, target = legs["sl"], legs["tp"]
    assert (stop["order_type"], stop["side"], stop["quantity"], stop["stop_price"]) == ("STOP", "SELL", "100", "145")
    assert (target["order_type"], target["side"], target["quantity"], target["limit_price"]) == (
        "LIMIT", "SELL", "100", "165")
    assert stop["parent_order_id"] == target["parent_order_id"] == result["id"]
    assert stop["reduce_only"] is True and target["reduce_only"] is True

    only_stop = wait_for(lambda: legs_of(stop_only["id"], "sl"), timeout=10, what="the stop-only bracket's leg")
    assert only_stop["sl"]["stop_price"] == "145"
    assert orders_with_client_id(desk, f"{stop_only['id']}-tp") == []


def test_an_order_is_found_again_by_its_client_order_id(desk, posted):
    order = {
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "100",
        "order_type": "MARKET",
        "client_order_id": "strategy-7-entry-2025-01-15"
    }
    response = requests.post(f"{desk.url}/v1/orders", json=order)
    response.raise_for_status()
    handle = response.json()

    assert response.status_code == 201
    assert_is_handle(handle)
    assert handle["client_order_id"] == "strategy-7-entry-2025-01-15"
    found = requests.get(f"{desk.url}/v1/orders", params={"client_order_id": "strategy-7-entry-2025-01-15"},
                         timeout=5)
    assert found.status_code == 200
    assert [(o["id"], o["client_order_id"], o["symbol"], o["quantity"]) for o in found.json()] == [
        (handle["id"], "strategy-7-entry-2025-01-15", "AAPL", "100")]


# --- (b) the tektii SDK -------------------------------------------------------------------------------

def test_the_tektii_sdk_trades_and_reads_market_data_through_the_desk(desk):
    with TradingGateway(base_url=desk.url, timeout=10) as gateway:
        handle = gateway.submit_order("AAPL", "buy", "1")
        assert handle.status in (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.FILLED)

        order = gateway.get_order(handle.id)
        assert (order.id, order.symbol, order.side, order.quantity) == (handle.id, "AAPL", Side.BUY, "1")
        wait_for(lambda: gateway.get_order(handle.id).status == OrderStatus.FILLED, timeout=5,
                 what="the SDK's market order to fill")

        positions = gateway.list_positions()
        aapl = [p for p in positions if p.symbol == "AAPL"]
        assert len(aapl) == 1 and float(aapl[0].quantity) >= 1

        account = gateway.get_account()
        assert account.currency == "USD"
        assert float(account.equity) > 0

        quote = gateway.get_quote("AAPL")
        assert quote.symbol == "AAPL" and float(quote.bid) < float(quote.ask)

        bars = gateway.get_bars("AAPL", "1m", limit=5)
        assert len(bars) == 5
        assert all(b.symbol == "AAPL" and b.timeframe == "1m" for b in bars)
        assert [b.timestamp for b in bars] == sorted(b.timestamp for b in bars)

        resting = gateway.submit_order("AAPL", "buy", "1", "limit", limit_price="100.00")
        cancelled = gateway.cancel_order(resting.id)
        assert cancelled.success is True
        assert (cancelled.order.id, cancelled.order.status) == (resting.id, OrderStatus.CANCELLED)
        assert gateway.get_order(resting.id).status == OrderStatus.CANCELLED


# --- (c) one engine per account -----------------------------------------------------------------------

def test_a_second_engine_refuses_to_run_an_account_the_desks_engine_already_runs(desk):
    def lease_owner() -> str | None:
        db = sqlite3.connect(f"file:{desk.var_dir / 'desk.sqlite3'}?mode=ro", uri=True, timeout=5)
        try:
            row = db.execute("SELECT owner FROM orders_enginelease").fetchone()
        finally:
            db.close()
        return row[0] if row else None

    owner = wait_for(lease_owner, timeout=10, what="the desk's engine to hold the account's lease")

    second = manage(desk.env, "run_engine", timeout=60)

    assert second.returncode != 0
    output = second.stdout + second.stderr
    assert "refusing to start" in output
    assert "account demo is already run by engine" in output
    assert owner in output
    assert desk.process.poll() is None, "the desk must keep running"
    assert lease_owner() == owner


# --- (d) the logins desk_setup prints -------------------------------------------------------------------

def shown_passwords(output: str) -> dict[str, str]:
    return dict(re.findall(r"^login +(\S+) / password (\S+) +\(shown once\)", output, re.MULTILINE))


def log_in(desk: Desk, username: str, password: str, session: requests.Session | None = None) -> requests.Response:
    """The login form as a browser posts it: its CSRF cookie first, then the form."""
    with session or requests.Session() as session:
        session.get(f"{desk.url}/login/", timeout=10)
        form = {"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]}
        return session.post(f"{desk.url}/login/", data=form, allow_redirects=False, timeout=10)


def test_the_logins_printed_on_the_first_start_open_the_desk_and_are_not_printed_again(desk):
    shown = shown_passwords(desk.setup_output)

    assert set(shown) == {"demo", "risk"}
    assert "the first login shows a QR code to scan" in desk.setup_output
    for username, password in shown.items():
        with requests.Session() as session:
            response = log_in(desk, username, password, session)
            assert (response.status_code, response.headers.get("Location")) == (302, f"{SETUP}?next=%2F"), username
            pass_second_step_http(session, desk.url, authenticators_of(desk), username, response)
            assert session.get(f"{desk.url}/", allow_redirects=False, timeout=10).status_code == 200, username
    again = manage(desk.env, "desk_setup")
    assert again.returncode == 0, again.stderr
    assert shown_passwords(again.stdout) == {}
    assert not any(password in again.stdout for password in shown.values())


def test_five_wrong_passwords_lock_a_login_of_the_running_desk(desk):
    """Through daphne, whose middleware runs asynchronously. It locks risk: it runs after the test above."""
    password = shown_passwords(desk.setup_output)["risk"]

    statuses = [log_in(desk, "risk", "wrong").status_code for _ in range(5)]
    refused = log_in(desk, " risk", password)         # the right password, spelt another way

    assert statuses == [200, 200, 200, 200, 429]
    assert refused.status_code == 429
    assert "Too many failed attempts. Try again in 15 minutes." in refused.text


# --- (e) Ctrl-C ---------------------------------------------------------------------------------------

def test_ctrl_c_stops_the_web_server_and_the_engine_within_ten_seconds(tmp_path):
    desk = start_desk(tmp_path)
    try:
        children = wait_for(lambda: len(kids := children_of(desk.process.pid)) == 2 and kids, timeout=10,
                            what="rundesk's two children (daphne and the engine)")
        wait_for(lambda: "running for demo" in desk.log(), timeout=30, what="the engine to finish starting")
        assert port_is_open(desk.port)

        desk.process.send_signal(signal.SIGINT)
        started = time.monotonic()
        wait_for(lambda: not any(is_running(pid) for pid in children), timeout=10,
                 what="daphne and the engine to exit")
        stopped_after = time.monotonic() - started
        desk.process.wait(timeout=max(0.1, 10 - stopped_after))

        assert stopped_after < 10
        assert desk.process.returncode == 0
        assert not port_is_open(desk.port)
        assert "desk stopped" in desk.log()
        assert "engine stopped" in desk.log()
    finally:
        stop_desk(desk)
