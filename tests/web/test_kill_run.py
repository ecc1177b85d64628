"""The risk view's kill switch card follows the latest kill switch to flatness at the venue: "Checking the
venue…", then "Flat after 1.3 s (1 cancel retried)" or "NOT FLAT after 10 s: …" with what is left, redrawn
live as the engine finds it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async

from orders.services.risk import kill_switch
from tests.builders import run_engine
from tests.web.page import parse
from tests.web.support import resting_limit
from tests.web.test_desk_socket import first_draw, opened, receive_until, swapped


def kill_card(client):
    return parse(client.get("/risk/").content).by_id("kill-run")


@pytest.mark.django_db
def test_the_risk_view_shows_the_cancel_retried_and_the_time_to_flat(risk_client, account, broker, clock):
    resting_limit(account, broker)
    broker.faults.refuse_cancels(1)
    assert kill_card(risk_client).text.strip() == ""                     # no kill switch pulled yet

    risk_client.post("/risk/kill-switch/")
    status = kill_card(risk_client).by_id("kill-run-status")
    assert (status.attrs["data-status"], status.text) == ("CHECKING", "Checking the venue…")

    clock.shift(timedelta(seconds=1.3))
    run_engine(account, broker)

    card = kill_card(risk_client)
    assert card.by_id("kill-run-status").text == "Flat after 1.3 s (1 cancel retried)"
    assert "by user:rita" in card.text and "flat means no working entry" in card.text


@pytest.mark.django_db
def test_the_risk_view_says_not_flat_with_what_is_left(risk_client, account, broker, clock):
    order = resting_limit(account, broker, quantity="3")
    broker.faults.refuse_cancels(100)
    risk_client.post("/risk/kill-switch/")

    clock.shift(10)
    run_engine(account, broker)

    page = parse(risk_client.get("/risk/").content)
    status = page.by_id("kill-run-status")
    assert status.attrs["role"] == "alert"
    assert status.text == (f"NOT FLAT after 10 s: order {str(order.pk)[:8]} (entry BUY 3 AAPL) working "
                           "(1 cancel retried; still retrying)")
    assert "NOT_FLAT" in page.by_id("alerts").text                      # the alert, until acknowledged


@pytest.mark.django_db
def test_the_kill_switch_dialog_says_the_venue_is_being_checked(risk_client, account, broker):
    resting_limit(account, broker)
    broker.faults.refuse_cancels(1)

    part = parse(risk_client.post("/risk/kill-switch/", {"from": "dialog"}).content)

    note = part.find("p", class_="kill-run-note")
    assert "Checking the venue until it reports the account flat; refused cancels are retried" in note.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_open_risk_view_is_shown_the_account_flat_when_the_engine_finds_it(risk_client, account, broker):
    await database_sync_to_async(resting_limit)(account, broker)
    broker.faults.refuse_cancels(1)
    communicator = await opened(risk_client, path="/ws/desk/?view=risk&account=alice")
    await first_draw(communicator)

    await database_sync_to_async(kill_switch)(account=account, broker=broker, actor="user:rita")
    checking = swapped(await receive_until(communicator, 'id="kill-run"'))["kill-run"]
    assert checking.by_id("kill-run-status").text == "Checking the venue…"

    await database_sync_to_async(run_engine)(account, broker)
    flat = swapped(await receive_until(communicator, 'data-status="FLAT"'))["kill-run"]
    assert flat.by_id("kill-run-status").text.startswith("Flat after ")
    assert flat.by_id("kill-run-status").text.endswith(" s (1 cancel retried)")
    await communicator.disconnect()
