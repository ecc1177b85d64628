"""The /v1 edge as an attacker's web page meets it: on the default start the API takes keyless requests
from loopback, so a page on any site the trader visits could send a "simple" cross-site request (no
preflight) to 127.0.0.1. Each attack is reproduced here and must be refused without touching anything:
no order placed, no kill switch run. Scripts (no ``Origin``, JSON bodies) are served as before."""

from __future__ import annotations

import json

import pytest

from orders.models import Account, AuditEvent, Order, TradingState
from tests.api.support import J, assert_error, order_body

pytestmark = pytest.mark.django_db
EVIL = "https://evil.example"
LISTED = "https://tools.example.com"


def post(client, path, body, content_type=J, **headers):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.generic("POST", path, raw, content_type=content_type, headers=headers)


def halted(account) -> bool:
    return Account.objects.get(pk=account.pk).trading_state == TradingState.HALTED


# -- JSON only -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_an_order_sent_as_a_simple_cross_site_content_type_is_refused_with_415(account, client, content_type):
    response = post(client, "/v1/orders", order_body(), content_type=content_type)

    body = assert_error(response, 415, "INVALID_REQUEST")
    assert "application/json" in body["message"]
    assert body["details"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert not Order.objects.exists()


def test_a_body_without_any_content_type_is_refused_with_415(account, client):
    response = post(client, "/v1/orders", order_body(), content_type="")

    assert_error(response, 415, "INVALID_REQUEST")
    assert not Order.objects.exists()


def test_a_text_plain_kill_switch_does_not_halt_the_account(account, client):
    response = post(client, "/v1/kill-switch", '{"flatten": true}', content_type="text/plain")

    assert_error(response, 415, "INVALID_REQUEST")
    assert not halted(account)


@pytest.mark.parametrize("content_type", [J, "application/json; charset=utf-8", "application/problem+json"])
def test_json_bodies_are_served(account, client, content_type):
    response = post(client, "/v1/orders", order_body(quantity="1"), content_type=content_type)

    assert response.status_code == 201, response.content
    assert Order.objects.count() == 1


def test_requests_without_a_body_need_no_content_type(account, client):
    assert client.get("/v1/orders").status_code == 200
    assert client.generic("DELETE", "/v1/orders").status_code == 200
    response = client.generic("POST", "/v1/kill-switch")             # the body is optional
    assert response.status_code == 200, response.content
    assert halted(account)


def test_an_empty_form_post_is_still_refused(account, client):
    """A cross-site <form> with no fields sends an empty text/plain body: no body, but not JSON either."""
    response = client.generic("POST", "/v1/kill-switch", "", CONTENT_TYPE="text/plain", CONTENT_LENGTH="0")

    assert_error(response, 415, "INVALID_REQUEST")
    assert not halted(account)


# -- size ------------------------------------------------------------------------------------------------

def test_a_10_mb_body_gets_413_in_the_envelope_and_places_nothing(account, client):
    big = json.dumps({**order_body(), "padding": "x" * (10 * 1024 * 1024)})

    response = post(client, "/v1/orders", big)

    body = assert_error(response, 413, "INVALID_REQUEST")
    assert body["details"]["code"] == "BODY_TOO_LARGE"
    assert body["details"]["max_bytes"] == 64 * 1024
    assert not Order.objects.exists()


def test_a_body_just_under_the_limit_is_read(account, client, settings):
    settings.DESK_API_MAX_BODY_BYTES = 4096
    body = {**order_body(quantity="1"), "client_order_id": "pad-1"}
    body["padding"] = "x" * (4096 - len(json.dumps({**body, "padding": ""})))
    assert len(json.dumps(body)) == 4096

    assert post(client, "/v1/orders", body).status_code == 201
    assert_error(post(client, "/v1/orders", {**body, "padding": body["padding"] + "x"}), 413, "INVALID_REQUEST")


# -- Origin ----------------------------------------------------------------------------------------------

def test_a_foreign_origin_cannot_run_the_kill_switch(account, client):
    response = post(client, "/v1/kill-switch", {"flatten": True}, Origin=EVIL)

    body = assert_error(response, 403, "UNAUTHORIZED")
    assert body["details"] == {"code": "ORIGIN_NOT_ALLOWED"}
    assert "Access-Control-Allow-Origin" not in response
    assert not halted(account)
    assert not AuditEvent.objects.filter(action__startswith="kill").exists()


def test_a_foreign_origin_cannot_place_an_order_even_with_a_key(account, client, auth):
    response = post(client, "/v1/orders", order_body(), Origin=EVIL, **auth)

    assert_error(response, 403, "UNAUTHORIZED")
    assert not Order.objects.exists()


@pytest.mark.parametrize("origin", ["null", "http://127.0.0.1:9999", "http://testserver.evil.example",
                                    "https://testserver"])
def test_origins_that_only_look_close_are_foreign(account, client, origin):
    assert_error(client.get("/v1/orders", headers={"Origin": origin}), 403, "UNAUTHORIZED")


def test_a_cross_site_fetch_without_an_origin_is_refused(account, client):
    response = post(client, "/v1/orders", order_body(), **{"Sec-Fetch-Site": "cross-site"})

    assert_error(response, 403, "UNAUTHORIZED")
    assert not Order.objects.exists()


def test_the_desks_own_pages_may_call_the_api(account, client):
    """The interactive docs at /v1/docs send their own origin."""
    response = post(client, "/v1/orders", order_body(quantity="1"), Origin="http://testserver",
                    **{"Sec-Fetch-Site": "same-origin"})

    assert response.status_code == 201, response.content


def test_scripts_send_no_origin_and_are_served(account, client):
    assert post(client, "/v1/orders", order_body(quantity="1")).status_code == 201


def test_the_desk_itself_is_not_subject_to_the_api_edge(client):
    assert client.get("/login/", headers={"Origin": EVIL}).status_code == 200


# -- CORS for listed origins -----------------------------------------------------------------------------

@pytest.fixture
def listed(settings):
    settings.DESK_CORS_ORIGINS = [LISTED]
    settings.CORS_ALLOWED_ORIGINS = [LISTED]


def test_a_listed_origin_gets_a_preflight_answer(account, client, listed):
    response = client.options("/v1/orders", headers={
        "Origin": LISTED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key"})

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == LISTED
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "x-api-key", "authorization"} <= allowed


def test_a_listed_origin_can_trade_and_read_the_answers(account, client, auth, listed):
    response = post(client, "/v1/orders", order_body(quantity="1"), Origin=LISTED, **auth)
    assert response.status_code == 201, response.content
    assert response["Access-Control-Allow-Origin"] == LISTED

    refused = post(client, "/v1/orders", "x", content_type="text/plain", Origin=LISTED, **auth)
    assert_error(refused, 415, "INVALID_REQUEST")
    assert refused["Access-Control-Allow-Origin"] == LISTED          # the page can read why


def test_a_foreign_preflight_is_refused(account, client, listed):
    response = client.options("/v1/kill-switch", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})

    assert_error(response, 403, "UNAUTHORIZED")
    assert "Access-Control-Allow-Origin" not in response


def test_the_edge_holds_when_the_desk_is_served_under_a_path_prefix(account, client):
    """Behind a proxy that mounts the desk at /desk (SCRIPT_NAME), /v1 is still /v1 to the checks."""
    response = client.generic("POST", "/desk/v1/kill-switch", "{}", content_type="text/plain",
                              SCRIPT_NAME="/desk", PATH_INFO="/v1/kill-switch",
                              headers={"Origin": EVIL})

    assert response.status_code == 403
    assert not halted(account)


def test_a_host_the_desk_does_not_serve_gets_the_envelope(account, client):
    response = client.get("/v1/orders", headers={"Host": "rebind.evil.example"})

    assert_error(response, 400, "INVALID_REQUEST")


def test_a_page_whose_name_only_matches_a_wildcard_host_is_not_the_desks_own(account, client, settings):
    """DNS rebinding against a desk configured with a wildcard host: same-origin to the browser, foreign to us."""
    settings.ALLOWED_HOSTS = [".example.com"]
    page = "http://rebind.example.com"

    response = post(client, "/v1/kill-switch", {}, Origin=page, Host="rebind.example.com")

    assert_error(response, 403, "UNAUTHORIZED")
    assert not halted(account)
