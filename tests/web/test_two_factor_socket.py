"""The desk socket asks what the pages ask: a session that still owes its second factor is refused, and the
same person gets in once they have given their code."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from orders.realtime.desk import CLOSE_UNAUTHORIZED
from orders.web.roles import RISK
from tests.web.support import PASSWORD, make_user, second_factor_given
from tests.web.test_desk_socket import ORIGIN, TIMEOUT, cookie_of, socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@database_sync_to_async
def password_only(username: str) -> Client:
    client = Client()
    assert client.post("/login/", {"username": username, "password": PASSWORD}).status_code == 302
    return client


async def test_a_session_owing_its_code_is_refused_and_the_same_session_gets_in_once_it_is_given(account):
    rita = await database_sync_to_async(make_user)("rita", RISK)
    client = await password_only("rita")

    connected, code = await socket(cookie_of(client), ORIGIN, path="/ws/desk/?view=risk").connect(timeout=TIMEOUT)
    assert (connected, code) == (False, CLOSE_UNAUTHORIZED)

    await database_sync_to_async(second_factor_given)(client, rita)
    communicator = socket(cookie_of(client), ORIGIN, path="/ws/desk/?view=risk")
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    await communicator.disconnect()
