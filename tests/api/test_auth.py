"""Who may call /v1: keyless only from loopback on a loopback deployment, otherwise an API key in
``Authorization: Bearer`` or ``X-API-Key``; read-only keys read; every key has a rate limit; a key
never leaks into an error body or a log line."""

from __future__ import annotations

import logging

import pytest

from orders.domain.enums import ApiRole
from orders.models import ApiKey, Order
from orders.services.keys import api_key_create, api_key_revoke
from tests.api.support import assert_error, order_body

pytestmark = pytest.mark.django_db

GATEWAY_KEY = "g" * 24 + "-shared-gateway-key"    # >= 32 characters


@pytest.fixture
def keys_required(settings):
    settings.API_ALLOW_KEYLESS = False


def assert_unauthorized(response, detail_code: str) -> dict:
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert body["details"] == {"code": detail_code}
    return body


def test_keyless_requests_from_loopback_work_by_default(client, account):
    assert client.get("/v1/account").status_code == 200


def test_without_keyless_access_a_request_without_a_key_is_401_missing_api_key(client, account, keys_required):
    body = assert_unauthorized(client.get("/v1/account"), "MISSING_API_KEY")
    assert body["message"] == "Unauthorized: API key required"
    assert "WWW-Authenticate" not in client.get("/v1/account")


def test_a_wrong_bearer_key_is_401_invalid_api_key(client, account, keys_required):
    body = assert_unauthorized(client.get("/v1/account", headers={"Authorization": "Bearer tdk_nope_wrong"}),
                               "INVALID_API_KEY")
    assert body["message"] == "Unauthorized: Invalid API key"


def test_a_wrong_key_is_refused_even_where_keyless_access_is_allowed(client, account):
    assert_unauthorized(client.get("/v1/account", headers={"X-API-Key": "not-a-key"}), "INVALID_API_KEY")


def test_the_right_key_works_as_bearer_or_as_x_api_key(client, account, api_key, keys_required):
    assert client.get("/v1/account", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    assert client.get("/v1/account", headers={"X-API-Key": api_key}).status_code == 200
    assert client.get("/v1/account", headers={"X-API-Key": f"  {api_key}  "}).status_code == 200


@pytest.mark.parametrize("authorization", ["Basic x", "Basic dXNlcjpwYXNz", "bearer {key}", "Bearer ", "Token {key}"])
def test_other_authorization_schemes_count_as_no_key(client, account, api_key, keys_required, authorization):
    response = client.get("/v1/account", headers={"Authorization": authorization.format(key=api_key)})
    assert_unauthorized(response, "MISSING_API_KEY")


def test_a_basic_header_does_not_hide_an_x_api_key(client, account, api_key, keys_required):
    response = client.get("/v1/account", headers={"Authorization": "Basic x", "X-API-Key": api_key})
    assert response.status_code == 200


def test_the_configured_gateway_key_is_accepted(client, account, settings, keys_required):
    settings.GATEWAY_API_KEY = GATEWAY_KEY
    assert client.get("/v1/account", headers={"Authorization": f"Bearer {GATEWAY_KEY}"}).status_code == 200
    assert client.get("/v1/account", headers={"X-API-Key": GATEWAY_KEY}).status_code == 200
    assert_unauthorized(client.get("/v1/account", headers={"X-API-Key": GATEWAY_KEY[:-1]}), "INVALID_API_KEY")
    assert_unauthorized(client.get("/v1/account"), "MISSING_API_KEY")


def test_a_request_from_another_host_needs_a_key_even_where_keyless_access_is_allowed(client, account, api_key):
    assert_unauthorized(client.get("/v1/account", REMOTE_ADDR="10.1.2.3"), "MISSING_API_KEY")
    assert client.get("/v1/account", REMOTE_ADDR="10.1.2.3", headers={"X-API-Key": api_key}).status_code == 200


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded"])
def test_a_proxied_request_needs_a_key_even_from_loopback(client, account, header):
    assert_unauthorized(client.get("/v1/account", headers={header: "203.0.113.9"}), "MISSING_API_KEY")


def test_a_revoked_key_is_401(client, account, api_key, keys_required):
    assert client.get("/v1/account", headers={"X-API-Key": api_key}).status_code == 200
    api_key_revoke(key=ApiKey.objects.get(account=account))
    assert_unauthorized(client.get("/v1/account", headers={"X-API-Key": api_key}), "INVALID_API_KEY")


def test_a_read_only_key_reads_but_cannot_trade(client, account, keys_required):
    key = api_key_create(account=account, name="dashboard", role=ApiRole.READ_ONLY)
    headers = {"X-API-Key": key}
    for path in ("/v1/account", "/v1/orders", "/v1/positions", "/v1/quotes/AAPL"):
        assert client.get(path, headers=headers).status_code == 200, path
    response = client.post("/v1/orders", order_body(), content_type="application/json", headers=headers)
    body = assert_error(response, 403, "UNAUTHORIZED")
    assert isinstance(body["details"]["code"], str)
    assert Order.objects.count() == 0
    assert client.delete("/v1/orders", headers=headers).status_code == 403
    assert client.generic("POST", "/v1/circuit-breakers/reset", headers=headers).status_code == 403


def test_a_key_acts_on_its_own_account(client, account, keys_required):
    from tests.builders import make_account

    bob = make_account(name="bob", cash=1000)
    key = api_key_create(account=bob, name="bob's script")
    assert client.get("/v1/account", headers={"X-API-Key": key}).json()["balance"] == "1000"


def test_a_key_over_its_rate_limit_is_429_with_when_to_retry(client, account, keys_required, clock):
    key = api_key_create(account=account, name="slow script", rate_limit_per_minute=3)
    headers = {"X-API-Key": key}
    for _ in range(3):
        assert client.get("/v1/account", headers=headers).status_code == 200
    response = client.get("/v1/account", headers=headers)
    body = assert_error(response, 429, "RATE_LIMITED")
    assert body["details"]["retry_after_seconds"] == 60
    assert body["details"]["reset_at"] == "2026-03-02T15:01:00Z"
    clock.shift(60)
    assert client.get("/v1/account", headers=headers).status_code == 200


def test_rate_limits_are_counted_per_key(client, account, keys_required, clock):
    slow = api_key_create(account=account, name="slow", rate_limit_per_minute=1)
    other = api_key_create(account=account, name="other", rate_limit_per_minute=1)
    assert client.get("/v1/account", headers={"X-API-Key": slow}).status_code == 200
    assert client.get("/v1/account", headers={"X-API-Key": slow}).status_code == 429
    assert client.get("/v1/account", headers={"X-API-Key": other}).status_code == 200


def test_a_key_just_verified_is_still_held_to_its_role_when_placing_orders(client, account, keys_required):
    key = api_key_create(account=account, name="dashboard", role=ApiRole.READ_ONLY)
    assert client.get("/v1/account", headers={"X-API-Key": key}).status_code == 200     # verified and remembered
    for _ in range(2):
        response = client.post("/v1/orders", order_body(), content_type="application/json", headers={"X-API-Key": key})
        assert_error(response, 403, "UNAUTHORIZED")
    assert Order.objects.count() == 0


def test_a_key_just_verified_is_still_held_to_its_rate_when_placing_orders(client, account, keys_required, clock):
    key = api_key_create(account=account, name="burst", rate_limit_per_minute=2)
    post = lambda: client.post("/v1/orders", order_body(), content_type="application/json",  # noqa: E731
                               headers={"Authorization": f"Bearer {key}"})
    assert [post().status_code for _ in range(3)] == [201, 201, 429]
    assert Order.objects.count() == 2


def test_probes_need_no_key(client, keys_required, settings):
    settings.GATEWAY_API_KEY = GATEWAY_KEY
    for path in ("/livez", "/readyz", "/health", "/metrics"):
        assert client.get(path, REMOTE_ADDR="10.1.2.3").status_code == 200, path


def test_a_key_never_appears_in_error_bodies_or_logs(client, account, api_key, keys_required, caplog, clock):
    wrong = api_key[:-6] + "XXXXXX"
    read_only = api_key_create(account=account, name="ro", role=ApiRole.READ_ONLY, rate_limit_per_minute=1)
    caplog.set_level(logging.DEBUG)
    assert client.get("/v1/account", headers={"X-API-Key": read_only}).status_code == 200
    responses = [
        client.get("/v1/account", headers={"Authorization": f"Bearer {wrong}"}),
        client.get("/v1/account", headers={"X-API-Key": wrong}),
        client.post("/v1/orders", {"symbol": api_key}, content_type="application/json",
                    headers={"X-API-Key": api_key}),
        client.post("/v1/orders", order_body(), content_type="application/json", headers={"X-API-Key": read_only}),
        client.get("/v1/account", headers={"X-API-Key": read_only}),
        client.get(f"/v1/orders/{api_key}", headers={"X-API-Key": api_key}),
    ]
    assert [r.status_code for r in responses] == [401, 401, 400, 403, 429, 404]
    # tdk_<prefix>_<secret>: the secret itself may contain "_"
    secrets = (api_key, wrong, read_only, api_key.split("_", 2)[2], read_only.split("_", 2)[2])
    for response in responses:
        for secret in secrets:
            assert secret not in response.content.decode(), response.content
    logged = caplog.text + "".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert secret not in logged
