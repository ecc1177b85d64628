"""Redis goes away and comes back: no HTTP route answers 500, and the stream's sockets carry on.

The fast tests point the cache at a port where nothing listens (what every request meets while Redis
restarts). The slow ones run the desk on real PostgreSQL and Redis processes and restart Redis under it,
or hold 50 sockets for a minute."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import requests
import websockets

from orders.api import auth
from orders.services.keys import api_key_create
from orders.web.roles import TRADER
from tests.e2e.desk_process import Desk, running_desk, wait_for
from tests.scaleout.servers import free_port
from tests.scaleout.test_resume import Follower, place, until
from tests.web.support import PASSWORD, make_user

J = "application/json"


@pytest.fixture
def redis_away(settings):
    """The cache on a Redis that does not answer (as during a restart)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
                                   "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1}}}
    auth._rate_warned_at[0] = -60.0
    return settings


def test_api_routes_answer_while_the_cache_is_away_and_rate_limiting_fails_open(client, account, redis_away,
                                                                                    caplog):
    key = api_key_create(account=account, name="script", rate_limit_per_minute=2)
    headers = {"X-API-Key": key}
    with caplog.at_level(logging.WARNING, logger="orders.api.auth"):
        answers = [client.get("/v1/account", headers=headers).status_code for _ in range(4)]
        placed = client.post("/v1/orders", {"symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET"},
                             content_type=J, headers=headers)
        keyless = client.get("/v1/positions")
    assert answers == [200, 200, 200, 200]          # the limit (2 a minute) is not counted while the cache is away
    assert placed.status_code == 201, placed.content
    assert keyless.status_code == 200
    warnings = [r for r in caplog.records if "rate limiting is off" in r.getMessage()]
    assert len(warnings) == 1                        # once a minute, not once a request
    assert "ConnectionError" in warnings[0].getMessage()


def test_the_login_and_the_desk_need_no_cache(client, account, redis_away, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    make_user("demo", TRADER, account)
    wrong = client.post("/login/", {"username": "demo", "password": "wrong"})
    assert wrong.status_code == 200                  # refused, counted by axes in the database
    response = client.post("/login/", {"username": "demo", "password": PASSWORD})
    assert response.status_code == 302, response.content
    assert client.get("/").status_code == 200


# -- real processes --------------------------------------------------------------------------------------

class RestartableRedis:
    """A redis-server on a fixed port that can be stopped and started again there (tests/scaleout/servers.py
    starts one for a whole test)."""

    def __init__(self, base: Path) -> None:
        self.base, self.port, self.process = base, free_port(), None
        base.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run bin/test, which installs it")
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(self.base)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _answers(self.port), timeout=10, interval=0.05, what="redis to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def _answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def redis(tmp_path):
    server = RestartableRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


ROUTES = ("/v1/account", "/v1/positions", "/v1/orders", "/v1/trades", "/v1/quotes/AAPL", "/v1/capabilities",
          "/readyz", "/health", "/login/")


def hammer(desk: Desk, stop: threading.Event, answers: list[tuple[str, int]]) -> None:
    """GET every route, and place an order every tenth round, until told to stop."""
    session = requests.Session()
    rounds = 0
    while not stop.is_set():
        for route in ROUTES:
            answers.append((route, session.get(f"{desk.url}{route}", timeout=10).status_code))
        if rounds % 10 == 0:
            answers.append(("POST /v1/orders", session.post(f"{desk.url}/v1/orders", timeout=10, json={
                "symbol": "MSFT", "side": "BUY", "quantity": "1", "order_type": "MARKET"}).status_code))
        rounds += 1


@pytest.mark.slow
def test_a_redis_restart_costs_no_request_and_no_stream_event(tmp_path, redis):
    with running_desk(tmp_path / "desk", REDIS_URL=redis.url) as desk:
        desk.start("rundesk", log_name="web")
        desk.wait_ready()
        followers = [Follower(f"ws://127.0.0.1:{desk.port}/v1/ws") for _ in range(5)]
        answers: list[tuple[str, int]] = []
        during: list[tuple[str, int]] = []

        async def scenario() -> list[str]:
            stop, hammering = asyncio.Event(), threading.Event()
            tasks = [asyncio.create_task(f.run(stop)) for f in followers]
            await asyncio.wait_for(asyncio.gather(*(f.open.wait() for f in followers)), 15)
            worker = asyncio.create_task(asyncio.to_thread(hammer, desk, hammering, answers))
            orders = [await asyncio.to_thread(place, desk)]
            await asyncio.to_thread(redis.stop)
            mark = len(answers)
            orders.append(await asyncio.to_thread(place, desk))
            await asyncio.sleep(3)
            during.extend(answers[mark:])
            await asyncio.to_thread(redis.start)
            await asyncio.sleep(2)
            orders.append(await asyncio.to_thread(place, desk))
            await until(lambda: all((o, "ORDER_FILLED") in f.order_events() for f in followers for o in orders))
            hammering.set()
            await worker
            stop.set()
            await asyncio.gather(*tasks)
            return orders

        orders = asyncio.run(scenario())
        failures = [(route, status) for route, status in answers if status >= 500]
        assert not failures, failures
        assert len(during) >= 20 and {status for _, status in during} <= {200, 201}, during
        for follower in followers:
            assert not follower.gaps and not follower.cuts and follower.connects == 1, follower.cuts
            assert follower.ids() == sorted(set(follower.ids()))
            assert {(o, "ORDER_FILLED") for o in orders} <= follower.order_events()
        assert "rate limiting is off while the cache cannot be reached" in desk.log("web")


HOLD_SECONDS = 60


async def hold_broadcast_socket(url: str, stop: asyncio.Event, cuts: list[str], seqs: list) -> None:
    """A /bench/ws socket: a bare Channels consumer that waits on the Redis channel layer (a blocking pop)."""
    try:
        async with websockets.connect(url, open_timeout=10) as socket:
            while not stop.is_set():
                try:
                    seqs.append(json.loads(await asyncio.wait_for(socket.recv(), timeout=0.25)).get("seq"))
                except TimeoutError:
                    continue
    except (OSError, websockets.WebSocketException) as error:
        cuts.append(repr(error))


@pytest.mark.slow
def test_fifty_stream_sockets_and_the_channel_layers_own_are_held_for_a_minute_on_redis_without_a_cut(
        tmp_path, redis):
    """Idle sockets were cut about every 5 s (redis-py's read deadline = channels-redis's blocking pop)."""
    with running_desk(tmp_path / "desk", REDIS_URL=redis.url) as desk:
        desk.start("rundesk", "--settings=bench.settings", log_name="web")   # the desk plus /bench/ws
        desk.wait_ready()
        followers = [Follower(f"ws://127.0.0.1:{desk.port}/v1/ws") for _ in range(50)]
        layer_cuts: list[str] = []
        layer_seqs: list[list] = [[] for _ in range(5)]

        async def scenario() -> str:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(f.run(stop)) for f in followers]
            tasks += [asyncio.create_task(hold_broadcast_socket(f"ws://127.0.0.1:{desk.port}/bench/ws", stop,
                                                                layer_cuts, seqs)) for seqs in layer_seqs]
            await asyncio.wait_for(asyncio.gather(*(f.open.wait() for f in followers)), 30)
            await asyncio.sleep(HOLD_SECONDS)
            order = await asyncio.to_thread(place, desk)
            async with websockets.connect(f"ws://127.0.0.1:{desk.port}/bench/ws") as sender:
                await sender.send(json.dumps({"type": "broadcast", "seq": 1}))
                await until(lambda: all(1 in seqs for seqs in layer_seqs))
            await until(lambda: all((order, "ORDER_CREATED") in f.order_events() for f in followers))
            stop.set()
            await asyncio.gather(*tasks)
            return order

        asyncio.run(scenario())
        assert not layer_cuts, layer_cuts
        assert [f.cuts for f in followers if f.cuts or f.connects != 1] == []
        assert "Timeout reading from" not in desk.log("web")
