"""The blotter's actions — cancel, modify, close a position, cancel all, flatten all — each answer with the
blotter redrawn (the ``#blotter`` partial) and a note or the error; and the chart's JSON."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders import selectors
from orders.domain.enums import OrderType
from orders.models import AuditEvent, Order, Position
from tests.builders import run_engine
from tests.web.page import parse
from tests.web.support import open_position, place, quote, resting_limit

pytestmark = pytest.mark.django_db


def blotter(response):
    """The redrawn blotter of an action's answer (which must be that fragment and nothing else)."""
    assert response.status_code == 200, response.content
    html = response.content.decode()
    assert "<html" not in html
    fragment = parse(html)
    assert [e.attrs["id"] for e in fragment.elements] == ["blotter"]
    return fragment


def note(fragment) -> str:
    return fragment.find("p", class_="ok").text


def error(fragment) -> str:
    return fragment.find("p", class_="error").text


def working_rows(fragment) -> list[str]:
    return [row.attrs["id"] for row in fragment.by_id("working-body").find_all("tr", class_="order")]


def held(account, symbol: str = "AAPL") -> Decimal:
    return Position.objects.filter(account=account, symbol=symbol).values_list("quantity", flat=True).first() or 0


# -- the blotter as drawn ------------------------------------------------------------------------------

def test_the_blotter_shows_working_orders_positions_fills_and_finished_orders(trader_client, account, broker,
                                                                               clock):
    filled = open_position(account, broker, clock)
    working = resting_limit(account, broker)

    page = parse(trader_client.get("/").content)

    assert working_rows(page) == [f"order-{working.id}"]
    assert page.by_id("position-aapl").find_all("td")[2].text == "10"
    assert [row.attrs["id"] for row in page.by_id("fills-body").find_all("tr")] == [
        f"trade-{filled.fills.get().id}"]
    assert page.by_id(f"done-{filled.id}").find(class_="status").text == "FILLED"
    assert page.by_id("account-figures").find("dt").text == "Balance"


def test_an_empty_blotter_says_so(trader_client):
    page = parse(trader_client.get("/").content)

    assert page.by_id("working-body").text == "No working orders"
    assert page.by_id("positions-body").text == "Flat"
    assert page.by_id("fills-body").text == "No fills"
    assert page.by_id("finished-body").text == "No finished orders"


def test_the_risk_desk_sees_the_blotter_without_its_buttons(risk_client, account, broker, clock):
    open_position(account, broker, clock)
    resting_limit(account, broker)

    page = parse(risk_client.get("/").content)

    assert len(working_rows(page)) == 1
    assert page.by_id("blotter").find("button") is None


# -- cancel --------------------------------------------------------------------------------------------

def test_cancelling_a_working_order(trader_client, htmx, account, broker):
    order = resting_limit(account, broker)

    fragment = blotter(trader_client.post(f"/orders/{order.id}/cancel/", headers=htmx))

    assert note(fragment) == "Order cancelled."
    order.refresh_from_db()
    assert order.status == "CANCELLED"
    assert working_rows(fragment) == []
    assert fragment.by_id(f"done-{order.id}").find(class_="status").text == "CANCELLED"
    assert AuditEvent.objects.filter(action="order.cancel", target=str(order.id), actor="user:tina").exists()


def test_cancelling_a_filled_order_shows_why_it_cannot_be(trader_client, account, broker, clock):
    order = open_position(account, broker, clock)

    fragment = blotter(trader_client.post(f"/orders/{order.id}/cancel/"))

    assert "is FILLED and cannot be cancelled" in error(fragment)


def test_an_order_of_another_account_cannot_be_cancelled(trader_client, other_account, broker):
    theirs = resting_limit(other_account, broker, actor="user:oscar")

    fragment = blotter(trader_client.post(f"/orders/{theirs.id}/cancel/"))

    assert "not found" in error(fragment).lower()
    theirs.refresh_from_db()
    assert theirs.status == "OPEN"


# -- modify --------------------------------------------------------------------------------------------

def test_modifying_the_quantity_and_limit_of_a_working_order(trader_client, account, broker):
    order = resting_limit(account, broker, quantity="10")
    new_limit = order.limit_price - 1

    fragment = blotter(trader_client.post(f"/orders/{order.id}/modify/", {"quantity": "4",
                                                                           "limit_price": str(new_limit)}))

    assert note(fragment) == "Order modified."
    order.refresh_from_db()
    assert (order.quantity, order.limit_price) == (4, new_limit)
    row = fragment.by_id(f"order-{order.id}")
    assert row.find_all("td")[4].text == "4"


def test_blank_fields_of_a_modification_are_left_as_they_are(trader_client, account, broker):
    order = resting_limit(account, broker, quantity="10")

    blotter(trader_client.post(f"/orders/{order.id}/modify/", {"quantity": "6", "limit_price": "  "}))

    before = order.limit_price
    order.refresh_from_db()
    assert (order.quantity, order.limit_price) == (6, before)


def test_a_modification_that_is_not_a_number_is_refused(trader_client, account, broker):
    order = resting_limit(account, broker)

    fragment = blotter(trader_client.post(f"/orders/{order.id}/modify/", {"quantity": "lots"}))

    assert error(fragment) == "Modify refused: INVALID_VALUE: 'lots' is not a decimal number"
    order.refresh_from_db()
    assert order.quantity == 10


def test_a_filled_order_cannot_be_modified(trader_client, account, broker, clock):
    order = open_position(account, broker, clock)

    fragment = blotter(trader_client.post(f"/orders/{order.id}/modify/", {"quantity": "3"}))

    assert error(fragment).startswith("Modify refused: ORDER_NOT_MODIFIABLE: ")


def test_a_modification_with_no_change_is_refused(trader_client, account, broker):
    order = resting_limit(account, broker)

    fragment = blotter(trader_client.post(f"/orders/{order.id}/modify/", {}))

    assert fragment.find("p", class_="error") is not None
    assert fragment.find("p", class_="ok") is None


@pytest.mark.parametrize(("trailing_type", "distance", "shown"), [("ABSOLUTE", "2.5", "trail 2.50"),
                                                                  ("PERCENT", "1.5", "trail 1.5%")])
def test_a_working_trailing_stop_shows_its_trail(trader_client, account, broker, trailing_type, distance, shown):
    from orders.domain.enums import TrailingType

    order = place(account, broker, side="SELL", order_type=OrderType.TRAILING_STOP, quantity="1",
                  trailing_distance=distance, trailing_type=TrailingType(trailing_type))

    row = parse(trader_client.get("/").content).by_id(f"order-{order.id}")
    assert shown in row.text


def test_the_modify_form_is_filled_with_the_order_s_own_values(trader_client, account, broker):
    whole = (quote(broker).bid - 20).quantize(Decimal("1"))
    below = whole + Decimal("0.50")                                 # typed with trailing zeros
    order = place(account, broker, order_type=OrderType.LIMIT, limit_price=below, quantity="7.000")

    form = parse(trader_client.get("/").content).by_id(f"order-{order.id}").find("form")

    values = {i.attrs["name"]: i.attrs.get("value") for i in form.find_all("input")}
    assert values == {"quantity": "7", "limit_price": f"{whole}.5"}       # as the API writes it
    assert all("placeholder" not in i.attrs for i in form.find_all("input"))


def test_a_prefilled_form_sends_only_what_was_changed(trader_client, account, broker):
    order = resting_limit(account, broker, quantity="7")
    new_limit = order.limit_price - 1

    fragment = blotter(trader_client.post(f"/orders/{order.id}/modify/", {"quantity": "7",
                                                                           "limit_price": str(new_limit)}))

    assert note(fragment) == "Order modified."
    event = AuditEvent.objects.get(action="order.modify")
    assert "quantity" not in event.details and event.details["limit_price"] == str(new_limit)


def test_a_prefilled_form_sent_unchanged_is_refused_saying_so(trader_client, account, broker):
    order = resting_limit(account, broker, quantity="7")

    fragment = blotter(trader_client.post(f"/orders/{order.id}/modify/", {"quantity": "7",
                                                                           "limit_price": str(order.limit_price)}))

    assert "nothing to change" in error(fragment)
    assert not AuditEvent.objects.filter(action="order.modify").exists()


def test_a_refused_modify_is_shown_in_the_order_s_row_with_its_form_left_open(trader_client, account, broker):
    order = resting_limit(account, broker, quantity="7")

    fragment = blotter(trader_client.post(f"/orders/{order.id}/modify/", {"quantity": "-2"}))

    row = fragment.by_id(f"order-{order.id}")
    assert "open" in row.find("details").attrs
    assert row.find("p", class_="modify-error").text.startswith("Modify refused: ")
    assert row.find("p", class_="modify-error").attrs["role"] == "alert"
    order.refresh_from_db()
    assert order.quantity == 7


# -- columns, order and filters ------------------------------------------------------------------------

def test_order_rows_show_time_in_force_and_short_ids_with_the_full_ones_in_their_title(trader_client, account,
                                                                                         broker):
    order = resting_limit(account, broker, client_order_id="strategy-7-abcdefghijkl")

    row = parse(trader_client.get("/").content).by_id(f"order-{order.id}")

    cells = row.find_all("td")
    assert cells[9].text == order.time_in_force
    assert (cells[10].text, cells[10].attrs["title"]) == (str(order.id)[:8], str(order.id))
    assert cells[11].attrs["title"] == "strategy-7-abcdefghijkl" and len(cells[11].text) <= 14
    assert (row.attrs["data-symbol"], row.attrs["data-side"], row.attrs["data-status"]) == ("AAPL", "BUY", "OPEN")


def test_finished_orders_are_sorted_by_when_they_finished(trader_client, account, broker, clock):
    first = resting_limit(account, broker)
    second = resting_limit(account, broker, symbol="MSFT")
    clock.shift(5)
    trader_client.post(f"/orders/{second.id}/cancel/")
    clock.shift(5)
    trader_client.post(f"/orders/{first.id}/cancel/")          # created first, finished last

    page = parse(trader_client.get("/").content)

    rows = page.by_id("finished-body").find_all("tr")
    assert [r.attrs["id"] for r in rows] == [f"done-{first.id}", f"done-{second.id}"]
    first.refresh_from_db()
    assert rows[0].find("td").text == first.updated_at.isoformat()[11:19]


def test_the_blotter_filters_sit_outside_the_redrawn_blotter(trader_client, account):
    page = parse(trader_client.get("/").content)

    filters = page.by_id("blotter-filters")
    assert [e.attrs["name"] for e in filters.find_all() if "name" in e.attrs] == ["symbol", "side", "status"]
    assert "FILLED" in [o.text for o in page.by_id("filter-status").find_all("option")]
    assert page.by_id("blotter").find(id="blotter-filters") is None      # an action's redraw keeps them


# -- positions -----------------------------------------------------------------------------------------

def test_closing_a_position(trader_client, account, broker, clock):
    open_position(account, broker, clock)

    fragment = blotter(trader_client.post("/positions/AAPL/close/"))

    assert note(fragment) == "Closing AAPL."
    assert held(account) == 0
    assert fragment.by_id("positions-body").text == "Flat"


def test_closing_a_position_with_a_colon_in_its_symbol(trader_client, account, broker, clock):
    open_position(account, broker, clock, symbol="F:EURUSD", quantity="1000")

    fragment = blotter(trader_client.post("/positions/F:EURUSD/close/"))

    assert note(fragment) == "Closing F:EURUSD."
    assert held(account, "F:EURUSD") == 0


def test_closing_a_position_that_is_flat_shows_an_error(trader_client):
    fragment = blotter(trader_client.post("/positions/AAPL/close/"))

    assert fragment.find("p", class_="error") is not None


def test_cancel_all_cancels_every_working_order(trader_client, account, broker):
    orders = [resting_limit(account, broker), resting_limit(account, broker, symbol="MSFT")]

    fragment = blotter(trader_client.post("/orders/cancel-all/"))

    assert note(fragment) == "2 cancelled"
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {"CANCELLED"}
    assert working_rows(fragment) == []


def test_cancel_all_with_nothing_working(trader_client):
    assert note(blotter(trader_client.post("/orders/cancel-all/"))) == "0 cancelled"


def test_flatten_all_closes_every_position(trader_client, account, broker, clock):
    open_position(account, broker, clock)
    open_position(account, broker, clock, symbol="MSFT", quantity="5")

    fragment = blotter(trader_client.post("/positions/flatten-all/"))

    assert note(fragment) == "Closing 2 positions."
    assert (held(account), held(account, "MSFT")) == (0, 0)


# -- who may act ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("action", ["cancel", "modify"])
def test_the_risk_desk_cannot_change_an_order(risk_client, account, broker, action):
    order = resting_limit(account, broker)

    response = risk_client.post(f"/orders/{order.id}/{action}/", {"quantity": "1"})

    assert response.status_code == 403
    order.refresh_from_db()
    assert (order.status, order.quantity) == ("OPEN", 10)


@pytest.mark.parametrize("url", ["/orders/cancel-all/", "/positions/flatten-all/", "/positions/AAPL/close/"])
def test_the_risk_desk_cannot_use_the_blotter_buttons(risk_client, account, broker, clock, url):
    open_position(account, broker, clock)
    working = resting_limit(account, broker)

    assert risk_client.post(url).status_code == 403
    working.refresh_from_db()
    assert working.status == "OPEN" and held(account) == 10


@pytest.mark.parametrize("url", ["/orders/cancel-all/", "/positions/flatten-all/"])
def test_the_blotter_actions_need_a_post(trader_client, url):
    assert trader_client.get(url).status_code == 405


# -- chart ---------------------------------------------------------------------------------------------

def test_the_chart_data_has_two_hours_of_minute_bars(trader_client, clock):
    response = trader_client.get("/chart/?symbol=MSFT")

    assert response.status_code == 200
    data = response.json()
    assert data["symbol"] == "MSFT"
    assert len(data["bars"]) == 120
    assert set(data["bars"][0]) == {"time", "open", "high", "low", "close"}
    times = [b["time"] for b in data["bars"]]
    assert times == sorted(times) and {b - a for a, b in zip(times, times[1:], strict=False)} == {60}
    assert data["lines"] == [] and data["fills"] == []


def test_the_chart_draws_the_entry_stop_and_target_of_a_protected_position(trader_client, account, broker, clock):
    ask = quote(broker).ask
    entry = open_position(account, broker, clock, stop_loss=ask - 3, take_profit=ask + 3)
    run_engine(account, broker, seconds=1, clock=clock)         # the legs go out once the entry has filled

    data = trader_client.get("/chart/?symbol=AAPL").json()

    lines = {line["label"]: Decimal(line["price"]) for line in data["lines"]}
    assert lines == {"entry": entry.average_fill_price, "stop": ask - 3, "target": ask + 3}
    [fill] = data["fills"]
    assert (fill["side"], fill["quantity"], Decimal(fill["price"])) == ("BUY", "10", entry.average_fill_price)


def test_the_chart_of_an_unknown_symbol_is_an_error(trader_client, clock):
    response = trader_client.get("/chart/?symbol=NOPE")

    assert response.status_code == 404
    assert "error" in response.json()


def test_the_chart_shows_only_the_accounts_own_fills(trader_client, other_account, broker, clock):
    place(other_account, broker, actor="user:oscar")
    run_engine(other_account, broker, seconds=1, clock=clock)

    assert trader_client.get("/chart/?symbol=AAPL").json()["fills"] == []


# -- what the blotter reads ----------------------------------------------------------------------------

@pytest.mark.parametrize("windows", [(200, 2000), (1, 2), ()], ids=["in-the-window", "past-the-windows", "none"])
def test_the_newest_fills_of_the_account_are_found_however_much_others_traded(monkeypatch, account, other_account,
                                                                               broker, clock, windows):
    monkeypatch.setattr(selectors, "FILL_WINDOWS", windows)
    mine = [open_position(account, broker, clock, quantity="1").fills.get() for _ in range(3)]
    for _ in range(3):                                        # the other account traded more lately
        open_position(other_account, broker, clock, quantity="1")

    assert selectors.latest_fills(account, 2) == [mine[2], mine[1]]
    assert selectors.latest_fills(account, 5) == mine[::-1]
    assert selectors.latest_fills(account, 5, symbol="MSFT") == []


def test_the_working_orders_are_drawn_newest_first(trader_client, account, broker, clock):
    orders = []
    for gap in ("20", "21", "22"):
        orders.append(resting_limit(account, broker, gap=gap))
        clock.shift(1)

    assert working_rows(parse(trader_client.get("/").content)) == [f"order-{o.id}" for o in reversed(orders)]
