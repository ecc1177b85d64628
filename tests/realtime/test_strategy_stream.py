"""The /v1/ws consumer as scripts meet it, through the routed ASGI application: who gets in (PROTOCOL §7.1,
§1.1), what it tolerates from clients (§7.3), and the desk's liveness and backpressure rules, which go
beyond the reference gateway (server pings, an idle deadline, slow clients told and closed)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async

from orders.realtime.consumers import CLOSE_IDLE, CLOSE_SLOW, CLOSE_UNAUTHORIZED
from orders.services.keys import api_key_create
from tests.builders import make_account
from tests.realtime.support import (
    CONNECT_TIMEOUT,
    REMOTE,
    SlowReader,
    close_code,
    connected_stream,
    frames_until,
    next_frame,
    place,
    receive_frame,
    stream,
    tick,
)
from tradingdesk.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]
GATEWAY_KEY = "g" * 40


async def new_key(account, name: str = "script") -> bytes:
    return (await database_sync_to_async(api_key_create)(account=account, name=name)).encode()


# -- who gets in ---------------------------------------------------------------------------------------

async def test_an_order_placed_over_rest_reaches_the_stream(account, client):
    communicator = await connected_stream()
    handle = await place(client, quantity="1")
    frame = await next_frame(communicator, "order")
    assert frame["event"] == "ORDER_CREATED"
    assert frame["order"]["id"] == handle["id"]
    await communicator.disconnect()


async def test_a_wrong_key_is_refused_at_the_handshake(account):
    communicator = stream(headers=[(b"authorization", b"Bearer tdk_nope_nope")])
    connected, code = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert not connected
    assert code == CLOSE_UNAUTHORIZED


async def test_a_wrong_key_is_refused_even_from_loopback_where_no_key_would_do(account):
    communicator = stream(headers=[(b"x-api-key", b"tdk_0000_not-a-key")])
    connected, code = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert (connected, code) == (False, CLOSE_UNAUTHORIZED)


async def test_a_remote_client_without_a_key_is_refused(account):
    communicator = stream(client=REMOTE)
    connected, code = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert (connected, code) == (False, CLOSE_UNAUTHORIZED)


async def test_a_loopback_client_behind_a_proxy_counts_as_remote(account):
    communicator = stream(headers=[(b"x-forwarded-for", b"203.0.113.7")])
    connected, code = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert (connected, code) == (False, CLOSE_UNAUTHORIZED)


async def test_a_web_page_from_another_site_cannot_open_the_keyless_stream(account):
    """Browsers send Origin on every websocket handshake; the desk's keyless loopback access is for scripts."""
    communicator = stream(headers=[(b"host", b"127.0.0.1:8080"), (b"origin", b"https://evil.example")])
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert not connected


async def test_a_page_of_the_desk_itself_may_open_the_stream(account):
    communicator = stream(headers=[(b"host", b"127.0.0.1:8080"), (b"origin", b"http://127.0.0.1:8080")])
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert connected
    await communicator.disconnect()


async def test_a_listed_origin_may_open_the_stream(account, settings):
    settings.DESK_CORS_ORIGINS = ["https://tools.example.com"]
    communicator = stream(headers=[(b"host", b"127.0.0.1:8080"), (b"origin", b"https://tools.example.com")])
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert connected
    await communicator.disconnect()


async def test_a_remote_client_is_accepted_with_a_bearer_key(account, client):
    key = await new_key(account)
    communicator = await connected_stream(headers=[(b"authorization", b"Bearer " + key)], client=REMOTE)
    handle = await place(client, quantity="1")
    assert (await next_frame(communicator, "order"))["order"]["id"] == handle["id"]
    await communicator.disconnect()


async def test_a_remote_client_is_accepted_with_an_x_api_key_header(account, client):
    key = await new_key(account)
    communicator = await connected_stream(headers=[(b"x-api-key", key)], client=REMOTE)
    handle = await place(client, quantity="1")
    assert (await next_frame(communicator, "order"))["order"]["id"] == handle["id"]
    await communicator.disconnect()


async def test_the_shared_gateway_key_opens_the_stream_when_one_is_configured(account, settings):
    settings.GATEWAY_API_KEY = GATEWAY_KEY
    settings.API_ALLOW_KEYLESS = False
    refused = stream()
    assert (await refused.connect(timeout=CONNECT_TIMEOUT)) == (False, CLOSE_UNAUTHORIZED)
    communicator = await connected_stream(headers=[(b"authorization", f"Bearer {GATEWAY_KEY}".encode())],
                                          client=REMOTE)
    await communicator.disconnect()


async def test_a_stream_carries_only_its_own_accounts_events(account, client):
    bob = await database_sync_to_async(make_account)(name="bob")
    bobs_stream = await connected_stream(headers=[(b"x-api-key", await new_key(bob))])
    alices_stream = await connected_stream()
    await place(client, quantity="1")                      # keyless: alice's, the default account
    await next_frame(alices_stream, "order")
    assert await bobs_stream.receive_nothing(timeout=0.3)
    await alices_stream.disconnect()
    await bobs_stream.disconnect()


# -- what clients may send -----------------------------------------------------------------------------

async def test_pongs_acks_garbage_and_binary_at_a_high_rate_never_close_the_stream_nor_answer_with_errors(
        account, client):
    communicator = await connected_stream()
    ack = json.dumps({"type": "event_ack", "correlation_id": "c-1", "events_processed": [], "timestamp": 0})
    noise = [{"text_data": json.dumps({"type": "pong"})}, {"text_data": ack}, {"text_data": "garbage{"},
             {"bytes_data": b"\x00\xff binary"}, {"text_data": "[1, 2, 3]"}, {"text_data": '"just a string"'},
             {"text_data": json.dumps({"type": "no_such_message", "symbols": 3})},
             {"text_data": json.dumps({"type": "subscribe", "symbols": "AAPL", "events": None})},
             {"text_data": json.dumps({"type": "event_ack"})}]
    for i in range(3000):
        await communicator.send_to(**noise[i % len(noise)])
    assert await communicator.receive_nothing(timeout=0.5)

    handle = await place(client, quantity="1")
    frame = await next_frame(communicator, "order")
    assert frame["order"]["id"] == handle["id"], "still open and still delivering"
    await communicator.disconnect()


# -- liveness ------------------------------------------------------------------------------------------

async def test_the_server_pings_every_stream_ping_seconds(account, settings):
    settings.STREAM_PING_SECONDS = 0.1
    communicator = await connected_stream()
    arrivals = []
    for _ in range(5):
        frame = await receive_frame(communicator, timeout=2)
        assert set(frame) == {"type", "timestamp"} and frame["type"] == "ping"
        arrivals.append(time.monotonic())
        await communicator.send_to(text_data=json.dumps({"type": "pong"}))
    mean_gap = (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1)
    assert 0.09 <= mean_gap < 0.5, mean_gap
    await communicator.disconnect()


async def test_a_client_that_stays_silent_past_stream_idle_seconds_is_closed(account, settings):
    settings.STREAM_PING_SECONDS = 0.1
    settings.STREAM_IDLE_SECONDS = 0.5
    asked = time.monotonic()              # the server's silence is counted from its accept, which comes after this
    communicator = await connected_stream()
    assert await close_code(communicator, timeout=5) == CLOSE_IDLE
    assert 0.5 <= time.monotonic() - asked < 3


async def test_a_client_that_answers_pings_outlives_the_idle_deadline(account, settings, client):
    settings.STREAM_PING_SECONDS = 0.1
    settings.STREAM_IDLE_SECONDS = 0.5
    communicator = await connected_stream()
    deadline = time.monotonic() + 1.6                      # more than three idle deadlines
    while time.monotonic() < deadline:
        assert (await receive_frame(communicator, timeout=2))["type"] == "ping"
        await communicator.send_to(text_data=json.dumps({"type": "pong"}))

    async def keep_answering():                 # as a live client does while the order is placed and told
        while True:
            await communicator.send_to(text_data=json.dumps({"type": "pong"}))
            await asyncio.sleep(0.1)
    answering = asyncio.create_task(keep_answering())
    try:
        handle = await place(client, quantity="1")
        assert (await next_frame(communicator, "order"))["order"]["id"] == handle["id"]
    finally:
        answering.cancel()
    await communicator.disconnect()


# -- backpressure --------------------------------------------------------------------------------------

async def scraped(client, name: str) -> float:
    """The value of one series on /metrics as a scrape shows it (0 when not yet recorded)."""
    text = (await database_sync_to_async(client.get)("/metrics")).content.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_a_client_that_stops_reading_is_told_it_is_too_slow_and_closed(account, broker, client, settings,
                                                                               caplog):
    # SlowReader's send waits once 3 messages are unread, as a socket with a full buffer would. Under daphne
    # a send never waits (Twisted buffers without bound), so there a stuck client is caught only by the idle
    # deadline, since it answers no pings, or by a single relay batch larger than STREAM_QUEUE_SIZE.
    settings.STREAM_QUEUE_SIZE = 4
    cut_before = await scraped(client, "gateway_ws_slow_consumer_disconnects")
    communicator = SlowReader(application, "/v1/ws", capacity=3)
    communicator.scope["client"] = ("127.0.0.1", 50000)
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert connected
    for _ in range(5):
        await place(client, quantity="1")                  # never read while these are produced
    await tick(account, broker)                            # 5 fills: 20 more frames

    frames = []
    while True:
        message = await communicator.receive_output(timeout=3)
        if message["type"] == "websocket.close":
            break
        frames.append(json.loads(message["text"]))
    assert message["code"] == CLOSE_SLOW
    *delivered, told = frames
    assert all(f["type"] == "order" for f in delivered[:4])
    assert set(told) == {"type", "code", "message", "details", "timestamp"}
    assert (told["type"], told["code"]) == ("error", "INTERNAL_ERROR")
    assert told["details"] == {"reason": "slow_consumer", "queue_size": 4}
    assert "reconnect" in told["message"]
    assert len(frames) < 25, "the rest was dropped, not delivered"
    assert await scraped(client, "gateway_ws_slow_consumer_disconnects") == cut_before + 1
    assert any(r.levelname == "WARNING" and "too slow" in r.getMessage() for r in caplog.records)


async def test_a_client_whose_connection_drops_is_logged_and_counted(account, client, caplog):
    series = 'gateway_ws_disconnects_total{reason="lost"}'
    before = await scraped(client, series)
    communicator = await connected_stream()

    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(timeout=CONNECT_TIMEOUT)

    assert await scraped(client, series) == before + 1
    assert any(r.levelname == "WARNING" and "lost (close code 1006)" in r.getMessage() for r in caplog.records)


async def test_a_burst_smaller_than_the_queue_reaches_a_client_that_reads_late(account, broker, client):
    communicator = SlowReader(application, "/v1/ws", capacity=3)
    communicator.scope["client"] = ("127.0.0.1", 50000)
    connected, _ = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert connected
    for _ in range(5):
        await place(client, quantity="1")
    await tick(account, broker)
    await asyncio.sleep(0.5)                               # the burst waits in the server's queue
    frames = [await receive_frame(communicator, timeout=3) for _ in range(25)]
    assert [f["type"] for f in frames].count("order") == 10
    assert not [f for f in frames if f["type"] == "error"]
    await communicator.disconnect()


async def test_desk_only_changes_stay_off_the_protocol_stream(account, client):
    """A trading state set, a breaker tripped and reset, a limit set, a key issued and revoked: the protocol has
    no frame for any of them. The desk's pages hear of them; /v1/ws does not."""
    from decimal import Decimal

    from orders.models import ApiKey
    from orders.services.breakers import ADAPTER, breaker_record_failure
    from orders.services.keys import api_key_revoke
    from orders.services.limits import limits_set

    communicator = await connected_stream()

    for state in ("REDUCING", "ACTIVE"):
        response = await database_sync_to_async(client.put)("/v1/trading-state", {"state": state},
                                                             content_type="application/json")
        assert response.status_code == 200
    for _ in range(3):
        await database_sync_to_async(breaker_record_failure)(account_id=account.pk, name=ADAPTER, reason="down")
    response = await database_sync_to_async(client.post)("/v1/circuit-breakers/reset", {},
                                                          content_type="application/json")
    assert response.status_code == 200
    await database_sync_to_async(limits_set)(account_id=account.pk, actor="x", max_quantity_hard=Decimal("1000"))
    await new_key(account, name="short-lived")
    await database_sync_to_async(lambda: api_key_revoke(key=ApiKey.objects.get(name="short-lived")))()
    handle = await place(client, quantity="1")                  # a later frame the stream must deliver

    frames = await frames_until(communicator, lambda f: f.get("order", {}).get("id") == handle["id"])
    assert {f["type"] for f in frames} <= {"order", "error", "ping"}
    await communicator.disconnect()
