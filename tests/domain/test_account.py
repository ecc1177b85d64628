from __future__ import annotations

from decimal import Decimal

from orders.domain.account import Holding, account_figures

D = Decimal


def test_an_account_with_only_cash_has_it_all_as_equity_and_buying_power():
    figures = account_figures(cash=D("100000"), holdings=[])
    assert figures.balance == D("100000")
    assert figures.equity == D("100000")
    assert figures.margin_used == 0
    assert figures.unrealized_pnl == 0
    assert figures.margin_available == D("100000")
    assert figures.buying_power == D("100000")
    assert figures.currency == "USD"


def test_a_long_position_adds_its_market_value_to_equity():
    # bought 10 at 140 out of 100 000: 98 600 cash left; now marked at 150
    figures = account_figures(cash=D("98600"), holdings=[Holding(D("10"), D("140"), D("150"), D("1"))])
    assert figures.balance == D("98600")
    assert figures.equity == D("100100")
    assert figures.unrealized_pnl == D("100")
    assert figures.margin_used == D("1500")        # fully funded
    assert figures.margin_available == D("98600")


def test_a_short_position_subtracts_its_market_value_and_needs_margin_on_its_absolute_size():
    # sold 10 short at 160 into 100 000: 101 600 cash; now marked at 150, 150 % margin
    figures = account_figures(cash=D("101600"), holdings=[Holding(D("-10"), D("160"), D("150"), D("1.5"))])
    assert figures.equity == D("100100")
    assert figures.unrealized_pnl == D("100")
    assert figures.margin_used == D("2250")
    assert figures.margin_available == D("97850")


def test_a_leveraged_position_holds_only_its_margin_rate_of_the_notional():
    figures = account_figures(cash=D("10000"), holdings=[Holding(D("100000"), D("1.08"), D("1.09"), D("0.02"))])
    assert figures.unrealized_pnl == D("1000")
    assert figures.margin_used == D("2180")


def test_figures_sum_across_holdings():
    holdings = [Holding(D("10"), D("100"), D("110"), D("1")), Holding(D("-5"), D("200"), D("190"), D("1.5"))]
    figures = account_figures(cash=D("50000"), holdings=holdings)
    assert figures.equity == D("50000") + D("1100") - D("950")
    assert figures.unrealized_pnl == D("100") + D("50")
    assert figures.margin_used == D("1100") + D("1425")


def test_reserved_funds_reduce_what_is_available_but_not_equity():
    figures = account_figures(cash=D("10000"), holdings=[], reserved=D("4000"))
    assert figures.equity == D("10000")
    assert figures.reserved == D("4000")
    assert figures.margin_available == D("6000")
    assert figures.buying_power == D("6000")


def test_buying_power_is_never_negative_although_margin_available_can_be():
    figures = account_figures(cash=D("1000"), holdings=[Holding(D("-100"), D("100"), D("120"), D("1.5"))])
    assert figures.margin_available < 0
    assert figures.buying_power == 0


def test_it_reports_the_currency_it_was_given():
    assert account_figures(cash=D("1"), holdings=[], currency="USDT").currency == "USDT"
