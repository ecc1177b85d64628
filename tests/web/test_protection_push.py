"""An open risk view is pushed its time-to-protection card when an entry's exits are acknowledged."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from orders.engine import engine_tick
from tests.web.test_desk_socket import first_draw, opened, receive_until, swapped
from tests.web.test_protection_time import enter

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_an_open_risk_view_is_told_when_a_filled_entry_is_protected(risk_client, account, broker):
    risk = await opened(risk_client, path="/ws/desk/?view=risk&account=alice")
    assert swapped(await first_draw(risk))["protection"].find(id="protection-none") is not None

    await database_sync_to_async(enter)(account, broker)
    await asyncio.sleep(1.1)                           # the paper venue fills a market order from the next second
    await database_sync_to_async(engine_tick)(accounts=[account], broker=broker)

    card = swapped(await receive_until(risk, 'class="protection-row"'))["protection"]
    [row] = card.find_all("tr", class_="protection-row")
    assert row.attrs["data-symbol"] == "AAPL" and row.attrs["data-protected"] == "yes"
    assert "protected after" in row.text
    assert card.by_id("protection-count").text == "1"
    await risk.disconnect()
