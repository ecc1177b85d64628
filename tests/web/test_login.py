"""Logging in, and the lock on guessing: five failures lock a user name, however it is spelt and from
wherever they come; twenty from one address lock that address for every name; the lock lasts 15 minutes,
refuses the right password too, covers the admin's login, and answers an unknown name exactly as it
answers a real one."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client

from orders.models import AuditEvent
from orders.web.roles import RISK
from tests.web.page import parse
from tests.web.support import PASSWORD, make_user

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed attempts. Try again in 15 minutes."
WRONG = "Please enter a correct username and password"
HERE, ELSEWHERE = "10.0.0.1", "192.0.2.77"


def name_limit() -> int:
    return settings.AXES_FAILURE_LIMIT


def address_limit() -> int:
    return settings.DESK_LOGIN_ADDRESS_FAILURE_LIMIT


def log_in(client, username: str = "tina", password: str = PASSWORD, *, address: str = HERE, path: str = "/login/",
           headers: dict | None = None, **fields):
    return client.post(path, {"username": username, "password": password, **fields}, headers=headers,
                       REMOTE_ADDR=address)


def fail(client, username: str = "tina", times: int = 1, **kwargs) -> list[int]:
    return [log_in(client, username, "wrong", **kwargs).status_code for _ in range(times)]


def alert(response) -> str:
    found = parse(response.content).find(role="alert")
    return found.text if found is not None else ""


def logged_in_as(client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=user_id).username if user_id else None


@pytest.fixture
def risk_login(account):
    """The risk desk's login, named "risk" as desk_setup names it."""
    return make_user("risk", RISK)


# -- logging in ----------------------------------------------------------------------------------------

def test_a_trader_logs_in_and_lands_on_the_desk(client, trader):
    response = log_in(client)

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="user.login", actor="user:tina").count() == 1


def test_logging_in_returns_to_the_page_asked_for(client, trader):
    response = log_in(client, next="/risk/")

    assert response["Location"] == "/risk/"


def test_a_wrong_password_shows_the_form_again_with_a_message(client, trader):
    response = log_in(client, password="wrong")

    assert response.status_code == 200
    assert WRONG in parse(response.content).by_id("login-form").text


def test_logging_out_needs_a_post_and_ends_the_session(trader_client):
    assert trader_client.get("/logout/").status_code == 405

    response = trader_client.post("/logout/")

    assert response.status_code == 302 and response["Location"] == "/login/"
    assert trader_client.get("/").status_code == 302


# -- the lock on a name --------------------------------------------------------------------------------

def test_the_fifth_wrong_password_locks_the_name_with_429_and_says_why(client, trader):
    assert fail(client, times=name_limit() - 1) == [200] * (name_limit() - 1)

    response = log_in(client, password="wrong")

    assert response.status_code == 429
    assert alert(response) == LOCKED
    assert parse(response.content).by_id("login-form").find("input", name="password") is not None


def test_a_locked_name_is_refused_even_with_the_right_password(client, trader):
    fail(client, times=name_limit())

    response = log_in(client)

    assert response.status_code == 429
    assert alert(response) == LOCKED
    assert logged_in_as(client) is None
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("spelling", ["risk ", " risk", "risk\t", "ｒｉｓｋ"])
def test_each_spelling_of_a_name_logs_in_to_it(client, risk_login, spelling):
    """Why the lock must be by the normalised name: the login form strips and normalises, so each of these
    is the risk desk's login."""
    assert log_in(client, spelling).status_code == 302
    assert logged_in_as(client) == "risk"


@pytest.mark.parametrize("spelling", ["risk ", " risk", "risk\t", "RISK", "ｒｉｓｋ"])
def test_once_risk_is_locked_no_spelling_of_it_gets_in_with_the_right_password(client, risk_login, spelling):
    fail(client, "risk", times=name_limit())

    response = log_in(client, spelling)

    assert response.status_code == 429
    assert alert(response) == LOCKED
    assert logged_in_as(client) is None


def test_failures_under_different_spellings_add_up_to_one_lock(client, risk_login):
    spellings = ["risk ", " risk", "RISK", "risk\t", "ｒｉｓｋ"][:name_limit()]
    statuses = [log_in(client, spelling, "wrong").status_code for spelling in spellings]

    assert statuses == [200] * (name_limit() - 1) + [429]
    assert log_in(client, "risk").status_code == 429


def test_the_lock_on_a_name_follows_it_to_every_address(risk_login):
    for n in range(name_limit()):
        fail(Client(), "risk", address=f"10.0.1.{n + 1}")

    response = log_in(Client(), "risk", address=ELSEWHERE)

    assert response.status_code == 429
    assert alert(response) == LOCKED


def test_another_name_logs_in_from_the_address_that_locked_one(client, trader, risk_user):
    fail(client, "tina", times=name_limit() + 1)

    assert log_in(client, "rita").status_code == 302


# -- the lock on an address ----------------------------------------------------------------------------

def test_twenty_failures_from_one_address_lock_it_for_every_name(trader):
    guesser = Client()
    before = [log_in(guesser, f"guess{n}", "wrong").status_code for n in range(address_limit() - 1)]
    last = log_in(guesser, "guess-last", "wrong")

    assert before == [200] * (address_limit() - 1)
    assert last.status_code == 429
    refused = log_in(Client(), "tina")
    assert refused.status_code == 429 and alert(refused) == LOCKED
    assert log_in(Client(), "tina", address=ELSEWHERE).status_code == 302


def test_an_ipv6_client_counts_as_its_64_block(trader):
    for n in range(address_limit()):
        fail(Client(), f"guess{n}", address=f"2001:db8:0:1::{n + 1:x}")

    assert log_in(Client(), address="2001:db8:0:1:ffff:ffff:ffff:ffff").status_code == 429
    assert log_in(Client(), address="2001:db8:0:2::1").status_code == 302


# -- the same answer for every name --------------------------------------------------------------------

def test_an_unknown_name_gets_the_same_answers_as_a_real_one(trader):
    def answers(username: str, address: str) -> list[tuple[int, str]]:
        client = Client()
        tries = [log_in(client, username, "wrong", address=address) for _ in range(name_limit())]
        tries.append(log_in(client, username, PASSWORD, address=address))
        return [(r.status_code, alert(r)) for r in tries]

    real, unknown = answers("tina", "10.0.2.1"), answers("nobody", "10.0.2.2")

    assert real == unknown
    assert [status for status, _ in real] == [200] * (name_limit() - 1) + [429, 429]


def test_a_locked_htmx_request_gets_the_login_form_fragment_with_429(client, trader, htmx):
    fail(client, times=name_limit())

    response = log_in(client, headers=htmx)

    assert response.status_code == 429
    assert "<html" not in response.content.decode()
    assert LOCKED in parse(response.content).by_id("login-form").text


# -- the admin's login ---------------------------------------------------------------------------------

@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("sam", password=PASSWORD, is_staff=True, is_superuser=True)


def test_the_admin_login_lets_staff_in(client, staff):
    response = log_in(client, "sam", path="/admin/login/", next="/admin/")

    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_failures_at_the_admin_login_and_the_desks_count_together_and_lock_both(client, staff):
    fail(client, "sam", times=name_limit() - 2, path="/admin/login/", next="/admin/")
    fail(client, "SAM ", times=2)

    at_admin = log_in(client, "sam", path="/admin/login/", next="/admin/")
    at_desk = log_in(client, "sam")

    assert at_admin.status_code == 429 and alert(at_admin) == LOCKED
    assert at_desk.status_code == 429
    assert logged_in_as(client) is None
    assert client.get("/admin/").status_code == 302


# -- forgiving and forgetting --------------------------------------------------------------------------

def test_a_successful_login_before_the_limit_forgives_that_names_failures(client, trader):
    fail(client, times=name_limit() - 1)
    assert log_in(client).status_code == 302
    client.post("/logout/")

    assert fail(client, times=name_limit() - 1) == [200] * (name_limit() - 1)
    assert log_in(client).status_code == 302


def test_logging_in_to_one_name_does_not_forgive_failures_against_another(client, trader, risk_login):
    fail(client, "risk", times=name_limit() - 1)
    assert log_in(Client(), "tina").status_code == 302           # same address, another name

    assert log_in(client, "risk", "wrong").status_code == 429


def test_the_lock_ends_15_minutes_after_it_began_however_often_it_is_tried(client, trader, clock):
    fail(client, times=name_limit())

    clock.shift(15 * 60 - 1)
    assert log_in(client).status_code == 429       # refused, and not counted: the lock is not extended

    clock.shift(2)
    assert log_in(client).status_code == 302


def test_a_lockout_is_written_to_the_audit_trail_once(client, risk_login):
    fail(client, "RISK", times=name_limit() + 3)

    lockouts = AuditEvent.objects.filter(action="user.lockout")
    assert [(e.target, e.result, e.details.get("address")) for e in lockouts] == [("risk", "locked", HERE)]


def test_the_lock_holds_through_the_asgi_server_as_well(trader):
    """daphne runs the middleware chain asynchronously, where axes calls the lockout page differently."""
    client = AsyncClient()

    def post(password: str):
        return async_to_sync(client.post)("/login/", {"username": "tina", "password": password})

    statuses = [post("wrong").status_code for _ in range(name_limit())]
    refused = post(PASSWORD)

    assert statuses == [200] * (name_limit() - 1) + [429]
    assert refused.status_code == 429 and alert(refused) == LOCKED
