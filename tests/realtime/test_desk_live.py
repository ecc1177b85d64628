"""The desk page's socket (/ws/desk/): only a logged-in member of the account, only from the desk's own
origin; what it receives are the page's own template partials as out-of-band swaps for htmx."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model

from orders.exits import decide as exits_decide
from orders.models import Alert, DeskMembership
from orders.realtime.desk import CLOSE_UNAUTHORIZED
from tests.realtime.support import CONNECT_TIMEOUT, place, rest_get, stream, tick

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]
DESK = "/ws/desk/"
ORIGIN = (b"origin", b"http://testserver")


def create_user(username: str):
    return get_user_model().objects.create_user(username)


async def session_cookie(client, username: str, *, member_of=None) -> tuple[bytes, bytes]:
    """Log ``username`` in with the Django test client; returns the cookie header of that session."""
    user = await database_sync_to_async(create_user)(username)
    if member_of is not None:
        await DeskMembership.objects.acreate(user=user, account=member_of)
    await database_sync_to_async(client.force_login)(user)
    name = django_settings.SESSION_COOKIE_NAME
    return b"cookie", f"{name}={client.cookies[name].value}".encode()


async def receive_until(communicator, pattern: str, *, timeout: float = 3) -> tuple[str, re.Match]:
    """The first message in which ``pattern`` is found (other messages are skipped)."""
    deadline = time.monotonic() + timeout
    seen = []
    while (remaining := deadline - time.monotonic()) > 0:
        html = await communicator.receive_from(timeout=remaining)
        match = re.search(pattern, html)
        if match:
            return html, match
        seen.append(html[:120])
    raise AssertionError(f"no message matched {pattern!r}; saw {seen}")


async def member_page(client, account):
    """The desk socket of a logged-in member of ``account``, connected from the desk's own origin."""
    cookie = await session_cookie(client, "alice", member_of=account)
    communicator = stream(path=DESK, headers=[cookie, ORIGIN])
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert connected
    return communicator


async def test_an_anonymous_visitor_is_refused(account):
    communicator = stream(path=DESK, headers=[ORIGIN])
    connected, code = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert (connected, code) == (False, CLOSE_UNAUTHORIZED)


async def test_a_logged_in_user_who_is_not_a_member_is_refused(account, client):
    cookie = await session_cookie(client, "mallory")
    communicator = stream(path=DESK, headers=[cookie, ORIGIN])
    connected, code = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert (connected, code) == (False, CLOSE_UNAUTHORIZED)


async def test_a_page_on_another_origin_is_refused_even_with_a_members_session(account, client):
    cookie = await session_cookie(client, "alice", member_of=account)
    communicator = stream(path=DESK, headers=[cookie, (b"origin", b"http://evil.example")])
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert not connected


async def test_a_request_without_an_origin_header_is_refused(account, client):
    cookie = await session_cookie(client, "alice", member_of=account)
    communicator = stream(path=DESK, headers=[cookie])
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert not connected


async def test_a_logged_in_member_sees_a_new_order_as_an_out_of_band_table_row(account, client):
    communicator = await member_page(client, account)
    handle = await place(client, quantity="10")
    html, row = await receive_until(communicator, rf'<tr id="order-{handle["id"]}"[^>]*>')
    assert 'hx-swap-oob="true"' in row.group(0)
    assert "status-open" in row.group(0)
    assert "<html" not in html
    await communicator.disconnect()


async def test_an_order_that_changes_arrives_as_its_own_row(account, client):
    bid = Decimal((await rest_get(client, "/v1/quotes/AAPL"))["bid"])
    handle = await place(client, order_type="LIMIT", limit_price=bid - 20)
    communicator = await member_page(client, account)
    await communicator.receive_from(timeout=3)                   # the page's first full draw: its tables,
    await communicator.receive_from(timeout=3)                   # then everything else
    response = await database_sync_to_async(client.patch)(
        f"/v1/orders/{handle['id']}", {"limit_price": str(bid - 25)}, content_type="application/json")
    assert response.status_code == 200, response.content
    html, _ = await receive_until(communicator, rf'^<tr id="order-{handle["id"]}"')
    assert re.match(rf'<tr id="order-{handle["id"]}" class="order status-open"[^>]*hx-swap-oob="true">', html)
    assert html.rstrip().endswith("</tr>") and str(bid - 25) in html
    await communicator.disconnect()


async def test_a_member_sees_the_open_alerts_when_the_page_connects(account, broker, client, monkeypatch):
    monkeypatch.setattr(exits_decide, "RETRY_WINDOW", timedelta(0))
    broker.faults.reject_next(1000, kind="STOP")
    await place(client, quantity="10", stop_loss="100", take_profit="200")
    await tick(account, broker)
    alert = await Alert.objects.aget(kind="POSITION_UNPROTECTED")

    communicator = await member_page(client, account)
    first = await communicator.receive_from(timeout=3) + await communicator.receive_from(timeout=3)
    item = re.search(rf'<div id="alert-{alert.pk}"[^>]*>', first)
    assert item and 'data-kind="POSITION_UNPROTECTED"' in item.group(0)
    await communicator.disconnect()


async def test_a_page_that_reconnects_is_redrawn_with_what_happened_while_it_was_away(account, client):
    """The desk's socket needs no resume: every (re)connect draws the whole page from the database."""
    communicator = await member_page(client, account)
    await communicator.receive_from(timeout=3)
    await communicator.disconnect()
    handle = await place(client, quantity="3")                   # while the page is away
    name = django_settings.SESSION_COOKIE_NAME
    cookie = b"cookie", f"{name}={client.cookies[name].value}".encode()          # the same page's session
    again = stream(path=DESK, headers=[cookie, ORIGIN])
    connected, _ = await again.connect(timeout=CONNECT_TIMEOUT)
    assert connected
    html, _ = await receive_until(again, rf'id="order-{handle["id"]}"')
    assert "hx-swap-oob" in html
    await again.disconnect()
