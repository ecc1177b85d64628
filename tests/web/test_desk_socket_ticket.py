"""What the desk socket tells the one page whose ticket placed an order (its banner follows the order) and every
desk page (fills and stop-outs as notifications); a page that placed nothing, and the risk view, get neither."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async

from orders.brokers.types import ExecutionReport, ReportKind
from orders.domain.money import format_decimal
from orders.models import Order
from orders.services.approvals import approval_approve, approval_cancel, approval_reject, ticket_send
from orders.services.fills import report_apply
from orders.services.limits import limits_set
from orders.templatetags.desk_numbers import price
from tests.builders import make_order_request
from tests.web.page import parse
from tests.web.support import open_position, place, resting_limit
from tests.web.test_desk_socket import TIMEOUT, first_draw, opened, receive_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

AT = datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC)


@database_sync_to_async
def report(order: Order, broker, kind: ReportKind, **fields) -> None:
    report_apply(report=ExecutionReport(str(order.id), kind, AT, **fields), broker=broker)


async def follow(communicator, order: Order) -> None:
    await communicator.send_to(text_data=json.dumps({"follow": str(order.id), "HEADERS": {}}))


async def drained(communicator) -> str:
    """Whatever else the socket sends until it is quiet for half a second."""
    html = ""
    while not await communicator.receive_nothing(timeout=0.5):
        html += await communicator.receive_from(timeout=TIMEOUT)
    return html


def banner(html: str):
    outcome = parse(html).by_id("ticket-outcome")
    assert outcome.attrs["hx-swap-oob"] == "true"
    return outcome


async def test_the_banner_follows_the_order_its_page_placed_to_rejected_with_the_venues_reason(trader_client,
                                                                                               account, broker):
    order = await database_sync_to_async(resting_limit)(account, broker)
    communicator = await opened(trader_client)
    await first_draw(communicator)

    await follow(communicator, order)
    now = banner(await receive_until(communicator, 'id="ticket-outcome"'))        # as it stands, at once
    assert now.attrs["data-order"] == str(order.id)
    assert now.by_id("ticket-placed").attrs["data-status"] == "OPEN"

    await report(order, broker, ReportKind.REJECTED, reason="venue halted the symbol")
    later = banner(await receive_until(communicator, 'id="ticket-outcome"')).by_id("ticket-placed")
    assert (later.attrs["data-status"], later.attrs["role"], later.attrs["class"]) == ("REJECTED", "alert", "error")
    assert "REJECTED" in later.text and ": UNKNOWN — venue halted the symbol" in later.text
    await communicator.disconnect()


async def test_the_banner_shows_a_partial_fill_then_the_fill(trader_client, account, broker):
    order = await database_sync_to_async(resting_limit)(account, broker)
    communicator = await opened(trader_client)
    await first_draw(communicator)
    await follow(communicator, order)
    await receive_until(communicator, 'id="ticket-outcome"')

    await report(order, broker, ReportKind.FILL, fill_id="f-1", quantity=Decimal("4"), price=order.limit_price)
    partial = banner(await receive_until(communicator, 'id="ticket-outcome"')).by_id("ticket-placed")
    assert partial.attrs["data-status"] == "PARTIALLY_FILLED" and "PARTIALLY_FILLED 4 of 10" in partial.text
    await report(order, broker, ReportKind.FILL, fill_id="f-2", quantity=Decimal("6"), price=order.limit_price)
    filled = banner(await receive_until(communicator, 'id="ticket-placed" data-status="FILLED"')).by_id("ticket-placed")
    assert f"FILLED @ {price(order.limit_price)}" in filled.text
    await communicator.disconnect()


async def test_a_page_that_placed_nothing_gets_no_banner_only_the_row(trader_client, account, broker):
    order = await database_sync_to_async(resting_limit)(account, broker)
    communicator = await opened(trader_client)
    await first_draw(communicator)

    await report(order, broker, ReportKind.REJECTED, reason="no")

    html = await receive_until(communicator, f'id="done-{order.id}"') + await drained(communicator)
    assert 'id="ticket-outcome"' not in html
    await communicator.disconnect()


async def test_a_follow_of_something_that_is_no_order_id_is_ignored(trader_client, account):
    communicator = await opened(trader_client)
    await first_draw(communicator)

    await communicator.send_to(text_data=json.dumps({"follow": "../../etc"}))

    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_a_fill_is_notified_on_the_desk(trader_client, account, broker):
    communicator = await opened(trader_client)
    await first_draw(communicator)

    order = await database_sync_to_async(resting_limit)(account, broker)
    await report(order, broker, ReportKind.FILL, fill_id="f-1", quantity=Decimal("10"), price=order.limit_price)

    html = await receive_until(communicator, 'id="toasts"')
    toasts = parse(html).by_id("toasts")
    assert toasts.attrs["hx-swap-oob"] == "beforeend"
    toast = toasts.find(class_="toast")
    assert (toast.attrs["role"], toast.text) == ("status", f"Bought 10 AAPL @ {price(order.limit_price)}")
    await communicator.disconnect()


async def test_a_stop_loss_that_fills_is_notified_as_a_stop_out(trader_client, account, broker, clock):
    entry = await database_sync_to_async(open_position)(account, broker, clock, stop_loss="100")
    stop = await Order.objects.aget(parent=entry, leg_role=Order.LegRole.STOP_LOSS)
    communicator = await opened(trader_client)
    await first_draw(communicator)

    await report(stop, broker, ReportKind.FILL, fill_id="s-1", quantity=stop.quantity, price=Decimal("99.5"))

    toast = parse(await receive_until(communicator, 'id="toasts"')).by_id("toasts").find(class_="toast")
    assert "toast-stop" in toast.attrs["class"]
    assert toast.text == f"Stopped out: sold {format_decimal(stop.quantity)} AAPL @ 99.50"
    await communicator.disconnect()


async def test_the_risk_view_gets_no_notification_and_no_banner(risk_client, account, broker):
    order = await database_sync_to_async(place)(account, broker, order_type="LIMIT", limit_price=Decimal("1"))
    communicator = await opened(risk_client, path="/ws/desk/?view=risk")
    await first_draw(communicator)
    await follow(communicator, order)

    await report(order, broker, ReportKind.FILL, fill_id="f-1", quantity=Decimal("10"), price=Decimal("1"))

    html = await receive_until(communicator, f'id="done-{order.id}"') + await drained(communicator)
    assert 'id="toasts"' not in html and 'id="ticket-outcome"' not in html
    await communicator.disconnect()


# -- an order sent for a second person's approval ----------------------------------------------------------------

@database_sync_to_async
def sent_for_approval(account, broker):
    limits_set(account_id=account.pk, actor="user:rita", approval_notional_above=Decimal("1000"))
    return ticket_send(account=account, request=make_order_request(quantity=Decimal("100")), broker=broker,
                       actor="user:tina")


async def follow_approval(communicator, approval) -> None:
    await communicator.send_to(text_data=json.dumps({"follow_approval": str(approval.pk), "HEADERS": {}}))


async def test_the_banner_of_an_order_sent_for_approval_says_it_was_rejected_and_why(trader_client, account, broker):
    asked = await sent_for_approval(account, broker)
    communicator = await opened(trader_client)
    await first_draw(communicator)
    await follow_approval(communicator, asked)
    outcome = banner(await receive_until(communicator, 'id="ticket-outcome"'))
    assert outcome.attrs["data-approval"] == str(asked.pk) and outcome.attrs["data-order"] == ""
    waiting = outcome.by_id("ticket-queued")
    assert waiting.attrs["data-status"] == "PENDING" and waiting.text.startswith("Sent for approval: Buy 100 AAPL")

    await database_sync_to_async(approval_reject)(account=account, approval_id=str(asked.pk), actor="user:rob",
                                                  supervisor=True, comment="too big for today")

    rejected = banner(await receive_until(communicator, 'data-status="REJECTED"')).by_id("ticket-queued")
    assert (rejected.attrs["role"], rejected.attrs["class"]) == ("alert", "error")
    assert rejected.text.startswith("Rejected by user:rob: Buy 100 AAPL @ MKT ≈ ")
    assert rejected.text.endswith("was not placed — “too big for today”.")
    await communicator.disconnect()


async def test_the_banner_of_an_order_sent_for_approval_says_it_was_withdrawn(trader_client, account, broker):
    asked = await sent_for_approval(account, broker)
    communicator = await opened(trader_client)
    await first_draw(communicator)
    await follow_approval(communicator, asked)
    await receive_until(communicator, 'id="ticket-outcome"')

    await database_sync_to_async(approval_cancel)(account=account, approval_id=str(asked.pk), actor="user:tina")

    withdrawn = banner(await receive_until(communicator, 'data-status="CANCELLED"')).by_id("ticket-queued")
    assert withdrawn.text.startswith("Withdrawn by user:tina: Buy 100 AAPL") and "was not placed" in withdrawn.text
    await communicator.disconnect()


async def test_an_approved_order_becomes_the_banner_of_the_order_placed(trader_client, account, broker):
    asked = await sent_for_approval(account, broker)
    communicator = await opened(trader_client)
    await first_draw(communicator)
    await follow_approval(communicator, asked)
    await receive_until(communicator, 'id="ticket-outcome"')

    await database_sync_to_async(approval_approve)(account=account, approval_id=str(asked.pk), actor="user:rob",
                                                   supervisor=True, broker=broker)

    order = await Order.objects.aget()
    placed = banner(await receive_until(communicator, 'id="ticket-placed"'))
    assert placed.attrs["data-order"] == str(order.id) and placed.find(id="ticket-queued") is None
    assert placed.attrs["data-approval"] == str(asked.pk)          # the page's banner still, swapped in
    assert placed.by_id("ticket-placed").text.startswith("Order BUY 100 AAPL MARKET sent")
    await communicator.disconnect()
