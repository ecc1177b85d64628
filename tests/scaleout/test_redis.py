"""Redis goes away and comes back: no HTTP route answers 500, and the stream's sockets carry on.

The fast tests point the cache at a port where nothing listens (what every request meets while Redis
restarts). The slow ones run the desk on real PostgreSQL and Redis processes and restart Redis under it,
or hold 50 sockets for a minute."""

from __future__ import annotations

import logging

import pytest

from orders.api import auth
from orders.services.keys import api_key_create
from orders.web.roles import TRADER
from tests.scaleout.servers import free_port
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
