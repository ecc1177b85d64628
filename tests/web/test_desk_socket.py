"""The desk page's socket (/ws/desk/) as the page uses it: a logged-in user from the desk's own origin gets
the whole blotter on connect (so a reconnecting page is reconciled), then the page's own partials as
out-of-band swaps whenever something changes, whoever changed it."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import OperationalError

from orders.realtime import desk
from orders.realtime.desk import CLOSE_UNAUTHORIZED
from orders.realtime.opening import CLOSE_TRY_AGAIN
from orders.realtime.relay import get_relay
from orders.services.orders import OrderChanges, order_cancel, order_modify
from orders.services.risk import kill_switch
from orders.web.roles import RISK, TRADER
from tests.web.page import parse
from tests.web.support import grant, logged_in, make_user, raise_alert, resting_limit
from tradingdesk.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

HOST = (b"host", b"testserver")
ORIGIN = (b"origin", b"http://testserver")
TIMEOUT = 5
BUNDLE = ("working-body", "finished-body", "positions-body", "fills-body", "account-figures", "trading-state-badge",
          "trading-state-note", "breaker-badge", "alerts-bar")


def cookie_of(client) -> tuple[bytes, bytes]:
    name = settings.SESSION_COOKIE_NAME
    return b"cookie", f"{name}={client.cookies[name].value}".encode()


def socket(*headers, path: str = "/ws/desk/") -> WebsocketCommunicator:
    """A handshake as a browser sends it: ``Host`` always, and the given headers."""
    communicator = WebsocketCommunicator(application, path, headers=[HOST, *headers])
    communicator.scope["client"] = ("127.0.0.1", 50000)
    return communicator


async def opened(client, path: str = "/ws/desk/") -> WebsocketCommunicator:
    communicator = socket(cookie_of(client), ORIGIN, path=path)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def receive_until(communicator, pattern: str) -> str:
    """The first message in which ``pattern`` is found; other messages are skipped."""
    deadline = time.monotonic() + TIMEOUT
    seen = []
    while (remaining := deadline - time.monotonic()) > 0:
        html = await communicator.receive_from(timeout=remaining)
        if re.search(pattern, html):
            return html
        seen.append(html[:100])
    raise AssertionError(f"no message matched {pattern!r}; saw {seen}")


async def first_draw(communicator) -> str:
    """The draw a page gets on connect: its table bodies, then everything else (two messages, see
    ``DeskLiveConsumer._send_sections``)."""
    rows = await communicator.receive_from(timeout=TIMEOUT)
    return rows + await communicator.receive_from(timeout=TIMEOUT)


def swapped(html: str) -> dict[str, object]:
    """The elements a message swaps in, by id; each must be an out-of-band swap."""
    elements = parse(html).elements
    assert all(e.attrs.get("hx-swap-oob") == "true" for e in elements), [e.attrs for e in elements]
    return {e.attrs["id"]: e for e in elements}


# -- who gets in ---------------------------------------------------------------------------------------

async def test_an_anonymous_visitor_is_refused(account):
    connected, code = await socket(ORIGIN).connect(timeout=TIMEOUT)

    assert (connected, code) == (False, CLOSE_UNAUTHORIZED)


async def test_a_page_from_another_origin_is_refused_even_with_a_traders_session(trader_client):
    communicator = socket(cookie_of(trader_client), (b"origin", b"http://evil.example"))

    connected, _ = await communicator.connect(timeout=TIMEOUT)

    assert not connected


@pytest.mark.parametrize("origin", [b"http://testserver:8081", b"https://testserver", b"null",
                                    b"http://localhost"])
async def test_a_page_from_a_near_miss_origin_is_refused(trader_client, origin):
    connected, _ = await socket(cookie_of(trader_client), (b"origin", origin)).connect(timeout=TIMEOUT)

    assert not connected


async def test_a_page_served_under_a_name_the_desk_does_not_answer_to_is_refused(trader_client):
    """DNS rebinding: a foreign name pointed at the desk's address is its page's own origin, but not a host
    the desk serves."""
    communicator = WebsocketCommunicator(application, "/ws/desk/", headers=[
        (b"host", b"rebind.evil.example:8080"), (b"origin", b"http://rebind.evil.example:8080"),
        cookie_of(trader_client)])

    connected, _ = await communicator.connect(timeout=TIMEOUT)

    assert not connected


async def test_a_socket_without_an_origin_is_refused(trader_client):
    connected, _ = await socket(cookie_of(trader_client)).connect(timeout=TIMEOUT)

    assert not connected


async def test_a_logged_out_session_is_refused(trader_client):
    cookie = cookie_of(trader_client)
    await database_sync_to_async(trader_client.logout)()

    connected, code = await socket(cookie, ORIGIN).connect(timeout=TIMEOUT)

    assert (connected, code) == (False, CLOSE_UNAUTHORIZED)


# -- the first draw ------------------------------------------------------------------------------------

async def test_a_member_gets_the_whole_blotter_on_connect(trader_client, account, broker):
    order = await database_sync_to_async(resting_limit)(account, broker)

    communicator = await opened(trader_client)
    first = await first_draw(communicator)

    assert "<html" not in first
    parts = swapped(first)
    assert tuple(parts) == BUNDLE
    assert parts["working-body"].find(id=f"order-{order.id}") is not None
    assert parts["positions-body"].text == "Flat"
    await communicator.disconnect()


async def test_the_first_draw_carries_the_live_alerts(trader_client, account):
    alert = await database_sync_to_async(raise_alert)(account)

    communicator = await opened(trader_client)
    parts = swapped(await first_draw(communicator))

    assert parts["alerts-bar"].find(id=f"alert-{alert.pk}").attrs["data-status"] == "OPEN"
    await communicator.disconnect()


async def test_a_trader_gets_rows_with_buttons_and_the_risk_desk_without(trader_client, risk_client, account,
                                                                        broker):
    order = await database_sync_to_async(resting_limit)(account, broker)
    rows = {}
    for name, client in (("trader", trader_client), ("risk", risk_client)):
        communicator = await opened(client)
        rows[name] = swapped(await first_draw(communicator))["working-body"].by_id(
            f"order-{order.id}")
        await communicator.disconnect()

    assert rows["trader"].find("button") is not None
    assert rows["risk"].find("button") is None


async def test_a_trader_asking_for_an_account_they_are_not_a_member_of_is_refused(outsider, account, broker):
    await database_sync_to_async(resting_limit)(account, broker)
    client = await database_sync_to_async(logged_in)(outsider)

    communicator = socket(cookie_of(client), ORIGIN, path="/ws/desk/?account=alice")
    connected, _ = await communicator.connect(timeout=TIMEOUT)

    assert not connected                                # as the page answers 404: no other account's socket
    await communicator.disconnect()


# -- what follows --------------------------------------------------------------------------------------

async def test_an_order_placed_elsewhere_appears_without_a_reload(trader_client, account, broker):
    communicator = await opened(trader_client)
    await first_draw(communicator)                       # the first draw

    order = await database_sync_to_async(resting_limit)(account, broker)

    html = await receive_until(communicator, f'id="order-{order.id}"')
    parts = swapped(html)
    row = parts["working-body"].by_id(f"order-{order.id}")
    assert "status-open" in row.attrs["class"] and row.find(class_="status").text == "OPEN"
    await communicator.disconnect()


async def test_an_order_from_the_rest_api_appears_too(trader_client, account):
    communicator = await opened(trader_client)
    await first_draw(communicator)

    response = await database_sync_to_async(trader_client.post)(
        "/v1/orders", {"symbol": "MSFT", "side": "SELL", "quantity": "3", "order_type": "LIMIT",
                       "limit_price": "500"}, content_type="application/json")
    assert response.status_code == 201, response.content
    order_id = response.json()["id"]

    row = swapped(await receive_until(communicator, f'id="order-{order_id}"'))["working-body"].by_id(
        f"order-{order_id}")
    assert [td.text for td in row.find_all("td")[1:5]] == ["MSFT", "SELL", "LIMIT", "3"]
    await communicator.disconnect()


async def test_a_pushed_row_on_the_risk_view_has_no_trading_buttons_even_for_a_trader(account, broker):
    """Someone who both trades and supervises watches the risk view: it shows orders, never acts on them
    (its rows' buttons would aim at a blotter the risk page does not have)."""
    both = await database_sync_to_async(make_user)("bea", TRADER, account)
    await database_sync_to_async(grant)(both, RISK)
    client = await database_sync_to_async(logged_in)(both)
    order = await database_sync_to_async(resting_limit)(account, broker)
    communicator = await opened(client, path="/ws/desk/?view=risk&account=alice")
    await first_draw(communicator)

    await database_sync_to_async(order_modify)(account=account, order_id=str(order.id),
                                               changes=OrderChanges(quantity=Decimal("4")), broker=broker)

    row = parse(await receive_until(communicator, rf'^<tr id="order-{order.id}"')).by_id(f"order-{order.id}")
    assert row.find_all("td")[4].text == "4"
    assert row.find("button") is None and row.find("form") is None
    await communicator.disconnect()


async def test_a_desk_socket_opened_while_the_database_is_down_is_told_to_come_back(trader_client, account,
                                                                                     monkeypatch):
    async def database_gone(*args, **kwargs):
        raise OperationalError("the connection is closed")

    monkeypatch.setattr(desk, "_account_for", database_gone)
    before = len(get_relay().clients)

    communicator = socket(cookie_of(trader_client), ORIGIN)
    connected, code = await communicator.connect(timeout=TIMEOUT)

    assert not connected and code == CLOSE_TRY_AGAIN
    assert len(get_relay().clients) == before


async def test_a_changed_order_arrives_as_its_own_row(trader_client, account, broker):
    order = await database_sync_to_async(resting_limit)(account, broker)
    communicator = await opened(trader_client)
    await first_draw(communicator)

    await database_sync_to_async(order_modify)(account=account, order_id=str(order.id),
                                               changes=OrderChanges(quantity=Decimal("4")), broker=broker)

    html = await receive_until(communicator, rf'^<tr id="order-{order.id}"')
    assert list(swapped(html)) == [f"order-{order.id}"]
    assert parse(html).by_id(f"order-{order.id}").find_all("td")[4].text == "4"
    await communicator.disconnect()


async def test_a_cancelled_order_moves_from_working_to_finished(trader_client, account, broker):
    order = await database_sync_to_async(resting_limit)(account, broker)
    communicator = await opened(trader_client)
    await first_draw(communicator)

    await database_sync_to_async(order_cancel)(account=account, order_id=str(order.id), broker=broker)

    parts = swapped(await receive_until(communicator, f'id="done-{order.id}"'))
    assert parts["working-body"].find(id=f"order-{order.id}") is None
    assert parts["finished-body"].by_id(f"done-{order.id}").find(class_="status").text == "CANCELLED"
    await communicator.disconnect()


async def test_another_accounts_orders_are_not_sent(trader_client, account, other_account, broker):
    communicator = await opened(trader_client)
    await first_draw(communicator)

    theirs = await database_sync_to_async(resting_limit)(other_account, broker, actor="user:oscar")
    mine = await database_sync_to_async(resting_limit)(account, broker)

    html = await receive_until(communicator, f'id="order-{mine.id}"')
    assert str(theirs.id) not in html
    await communicator.disconnect()


# -- the risk view -------------------------------------------------------------------------------------

async def test_the_risk_view_gets_its_alerts_section_on_connect_and_when_an_alert_is_raised(risk_client, account):
    communicator = await opened(risk_client, path="/ws/desk/?view=risk&account=alice")
    first = swapped(await first_draw(communicator))
    assert set(first) == {"alerts", "trading-state-badge", "trading-state", "breaker-badge", "breakers",
                          "working-body", "finished-body", "protection", "kill-run", "guards", "channels",
                          "approvals"}
    assert first["alerts"].find(id="no-alerts") is not None

    alert = await database_sync_to_async(raise_alert)(account)

    html = await receive_until(communicator, f'id="alert-{alert.pk}"')
    alerts = swapped(html)["alerts"]
    assert alerts.by_id(f"ack-{alert.pk}") is not None                 # the form to acknowledge it
    await communicator.disconnect()


async def test_the_account_figures_follow_what_working_orders_hold(trader_client, account, broker):
    communicator = await opened(trader_client)
    first = swapped(await first_draw(communicator))

    def available(parts) -> Decimal:
        figures = parts["account-figures"]
        labels = [dt.text for dt in figures.find_all("dt")]
        return Decimal(figures.find_all("dd")[labels.index("Available")].text.replace(",", ""))

    order = await database_sync_to_async(resting_limit)(account, broker, quantity="10")
    # a redraw is two messages: the tables, then the figures
    placed = swapped(await receive_until(communicator, f'id="order-{order.id}"') +
                     await communicator.receive_from(timeout=TIMEOUT))
    await database_sync_to_async(order_cancel)(account=account, order_id=str(order.id), broker=broker)
    cancelled = swapped(await receive_until(communicator, f'id="done-{order.id}"') +
                        await communicator.receive_from(timeout=TIMEOUT))

    assert available(placed) == available(first) - order.limit_price * 10
    assert available(cancelled) == available(first)
    await communicator.disconnect()


async def test_the_top_bar_follows_a_halt_by_the_risk_desk(trader_client, account, broker):
    await database_sync_to_async(resting_limit)(account, broker)
    communicator = await opened(trader_client)
    assert swapped(await first_draw(communicator))["trading-state-badge"].text == "ACTIVE"

    await database_sync_to_async(kill_switch)(account=account, broker=broker, actor="user:rita")

    parts = swapped(await receive_until(communicator, 'id="trading-state-badge"[^>]*>HALTED'))
    assert parts["trading-state-badge"].attrs["class"] == "badge state-halted"
    assert parts["trading-state-note"].text.startswith("Trading is halted on this account")   # above the ticket
    await communicator.disconnect()


async def test_a_broker_outage_shows_stale_badges_per_symbol_until_prices_are_fresh_again(trader_client, account,
                                                                                          broker):
    from orders.engine import BrokerLink, engine_tick

    await database_sync_to_async(resting_limit)(account, broker)
    communicator = await opened(trader_client)
    link = BrokerLink()
    broker.faults.set_unavailable(True)
    await database_sync_to_async(engine_tick)(accounts=[account], broker=broker, link=link)
    stale = await receive_until(communicator, r'id="staleness"[^>]*>.*AAPL stale since')
    assert "badge stale" in stale
    broker.faults.set_unavailable(False)
    await database_sync_to_async(engine_tick)(accounts=[account], broker=broker, link=link)
    fresh = await receive_until(communicator, r'<span id="staleness" class="staleness" hx-swap-oob="true"></span>')
    assert "AAPL" not in fresh
    await communicator.disconnect()


# -- changes made through another door reach every open page --------------------------------------------

async def test_an_alert_acknowledged_elsewhere_stops_flashing_on_an_open_desk(trader_client, account):
    """The risk desk acknowledges (here through /v1): the trader's open desk must show it answered at once,
    not keep flashing and beeping until reloaded."""
    from orders.services.alerts import alert_acknowledge

    alert = await database_sync_to_async(raise_alert)(account)
    communicator = await opened(trader_client)
    first = swapped(await first_draw(communicator))
    assert first["alerts-bar"].find(id=f"alert-{alert.pk}").attrs["data-status"] == "OPEN"

    await database_sync_to_async(alert_acknowledge)(alert_id=str(alert.pk), actor="key:abcd", comment="on it")

    html = await receive_until(communicator, rf'id="alert-{alert.pk}"[^>]*data-status="ACKNOWLEDGED"'
                                             rf'|data-status="ACKNOWLEDGED"[^>]*id="alert-{alert.pk}"')
    assert swapped(html)["alerts-bar"].find(id=f"alert-{alert.pk}").attrs["data-status"] == "ACKNOWLEDGED"
    await communicator.disconnect()


async def test_an_alert_the_engine_resolves_leaves_every_open_page(trader_client, account):
    from orders.models import Alert
    from orders.services.alerts import alerts_resolve

    alert = await database_sync_to_async(raise_alert)(account)
    communicator = await opened(trader_client)
    await first_draw(communicator)

    await database_sync_to_async(alerts_resolve)(account_id=account.pk, symbol=alert.symbol,
                                                 kind=Alert.Kind.POSITION_UNPROTECTED, resolution="stop placed")

    html = await receive_until(communicator, 'id="alerts-bar"')
    assert swapped(html)["alerts-bar"].find(id=f"alert-{alert.pk}") is None
    await communicator.disconnect()


async def test_a_trading_state_set_through_the_api_reaches_an_open_risk_view_and_desk(
        risk_client, trader_client, account, client):
    risk = await opened(risk_client, path="/ws/desk/?view=risk&account=alice")
    desk = await opened(trader_client)
    await first_draw(risk)
    await first_draw(desk)

    response = await database_sync_to_async(client.put)("/v1/trading-state", {"state": "REDUCING"},
                                                         content_type="application/json")
    assert response.status_code == 200

    on_risk = swapped(await receive_until(risk, 'id="trading-state"'))
    assert on_risk["trading-state"].find(id="state-now").text == "REDUCING"
    assert on_risk["trading-state-badge"].text == "REDUCING"
    on_desk = swapped(await receive_until(desk, 'id="trading-state-note"'))
    assert "Reduce-only" in on_desk["trading-state-note"].text
    await risk.disconnect()
    await desk.disconnect()


async def test_a_breaker_tripped_and_reset_elsewhere_shows_on_an_open_desk_and_risk_view(
        risk_client, trader_client, account, client):
    from orders.services.breakers import ADAPTER, breaker_record_failure

    risk = await opened(risk_client, path="/ws/desk/?view=risk&account=alice")
    desk = await opened(trader_client)
    first = swapped(await first_draw(risk))
    assert first["breakers"].by_id("breaker-adapter").attrs["data-state"] == "closed"
    await first_draw(desk)

    for _ in range(3):                                   # the venue down three times: the engine's door
        await database_sync_to_async(breaker_record_failure)(account_id=account.pk, name=ADAPTER, reason="down")

    on_risk = swapped(await receive_until(risk, r'id="breaker-adapter" data-state="open"'))
    assert on_risk["breaker-badge"].text.strip() == "BREAKER OPEN: adapter"
    on_desk = swapped(await receive_until(desk, r'id="breaker-badge" data-state="open"'))
    assert "adapter" in on_desk["breaker-badge"].text

    response = await database_sync_to_async(client.post)("/v1/circuit-breakers/reset", {},
                                                          content_type="application/json")
    assert response.status_code == 200

    on_risk = swapped(await receive_until(risk, r'id="breaker-adapter" data-state="closed"'))
    assert on_risk["breaker-badge"].attrs["data-state"] == "closed"
    on_desk = swapped(await receive_until(desk, r'id="breaker-badge" data-state="closed"'))
    assert on_desk["breaker-badge"].text == ""
    await risk.disconnect()
    await desk.disconnect()


async def test_the_risk_view_follows_an_order_filled_and_cancelled(risk_client, account, broker):
    risk = await opened(risk_client, path="/ws/desk/?view=risk&account=alice")
    await first_draw(risk)

    order = await database_sync_to_async(resting_limit)(account, broker)
    html = await receive_until(risk, f'id="order-{order.id}"')
    assert swapped(html)["working-body"].by_id(f"order-{order.id}").find("button") is None   # no trading here

    await database_sync_to_async(order_cancel)(account=account, order_id=str(order.id), broker=broker, actor="x")
    parts = swapped(await receive_until(risk, f'id="done-{order.id}"'))
    assert parts["finished-body"].by_id(f"done-{order.id}").find(class_="status").text == "CANCELLED"
    assert parts["working-body"].find(id=f"order-{order.id}") is None
    await risk.disconnect()
