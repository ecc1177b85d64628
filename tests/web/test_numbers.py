"""How the desk shows numbers: money to the cent with thousands separators, average prices to a useful
precision, P&L coloured by its sign. The API keeps every digit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.templatetags.desk_numbers import average, direction, money, price
from tests.web.page import parse
from tests.web.support import quote

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("value", "shown"), [
    ("98489.3", "98,489.30"), ("-10.7282037384", "-10.73"), ("1000000000000", "1,000,000,000,000.00"),
    ("0.005", "0.00"), ("0.015", "0.02"), ("-0.001", "0.00"), ("0", "0.00"), (Decimal("12.345"), "12.34"),
    ("", ""), (None, ""), ("n/a", "n/a"),
])
def test_money_is_shown_to_the_cent(value, shown):
    assert money(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    ("153.6", "153.60"), ("1.08345", "1.08345"), ("48906.7", "48,906.70"), ("1500.000", "1,500.00"),
    ("0.00001", "0.00001"), ("0", "0.00"), (None, ""),
])
def test_venue_prices_keep_every_digit(value, shown):
    assert price(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    ("151.5766109102", "151.57661"), ("1.0834512345", "1.0834512"), ("48906.7140468645", "48,906.714"),
    ("0.000012345678", "0.000012345678"), ("150", "150.00"), (None, ""),
])
def test_averages_keep_eight_significant_digits(value, shown):
    assert average(value) == shown


@pytest.mark.parametrize(("value", "way"), [("12.5", "up"), ("-0.01", "down"), ("-0.004", "flat"), ("0", "flat"),
                                            (None, "flat")])
def test_a_pnl_points_the_way_it_shows(value, way):
    assert direction(value) == way


def test_the_blotter_shows_account_figures_with_separators(trader_client, account, clock):
    figures = parse(trader_client.get("/").content).by_id("account-figures")

    shown = dict(zip([dt.text for dt in figures.find_all("dt")], [dd.text for dd in figures.find_all("dd")],
                     strict=True))
    assert shown["Balance"] == "100,000.00"
    assert shown["Unrealised P&L"] == "0.00"


@pytest.mark.parametrize(("value", "decimals", "shown"), [
    ("187.2033333333", 2, "187.20"), ("187.205", 2, "187.20"), ("187.215", 2, "187.22"), ("1.083451234", 5, "1.08345"),
    ("48906.7140468645", 2, "48,906.71"), ("150", 2, "150.00"), ("21.5", 0, "22"), ("0", 2, "0.00"),
    ("151.5766109102", None, "151.57661"), (None, 2, ""),
])
def test_an_average_takes_the_instruments_decimals_when_known(value, decimals, shown):
    assert average(value, decimals) == shown


@pytest.mark.parametrize(("tick", "decimals"), [("0.01", 2), (Decimal("0.00001"), 5), ("0.5", 1), ("1", 0),
                                                ("0.0100", 2), ("0", None), (None, None)])
def test_an_instruments_decimals_are_its_ticks(tick, decimals):
    from orders.templatetags.desk_numbers import tick_decimals

    assert tick_decimals(tick) == decimals


def test_a_positions_average_entry_shows_the_instruments_tick_decimals(trader_client, account, broker, clock):
    from django.utils import timezone

    from orders.models import Position

    assert broker.instrument("AAPL").tick_size == Decimal("0.01")
    Position.objects.create(account=account, symbol="AAPL", quantity=Decimal("30"),
                            average_price=Decimal("187.2033333333"), opened_at=timezone.now(),
                            updated_at=timezone.now())

    row = parse(trader_client.get("/").content).by_id("position-aapl")

    assert row.find_all("td")[3].text == "187.20"


def test_the_tickets_quote_shows_prices_as_the_blotter_does(trader_client, broker, clock):
    q = quote(broker, "BTCUSDT")
    preview = parse(trader_client.post("/ticket/preview/", {
        "token": "8d0c7a52-6f3e-4a57-9b1e-1f0a3b8c2d11", "symbol": "BTCUSDT", "side": "BUY", "order_type": "MARKET",
        "quantity": "0.01", "time_in_force": "GTC", "stop_loss": "48000", "stop_loss_mode": "PRICE"}).content)

    assert preview.by_id("quote-last").text == price(q.last)                 # 49,070.35, not 49070.35
    assert preview.by_id("quote-bid").text == price(q.bid) and "," in price(q.bid)
    assert preview.by_id("quote-ask").text == price(q.ask)
    assert preview.by_id("quote-spread").text.startswith(f"Spread {price(q.ask - q.bid)} · ")
    assert preview.by_id("preview-sl").text == "48,000.00"
