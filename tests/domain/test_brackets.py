"""A bracket's exits as a trader sets them (a price, an offset, a percent, or R), resolved to the prices sent,
and sizing by risk. Pure: no database."""

from decimal import Decimal as D

import pytest

from orders.domain.brackets import (
    LegMode,
    on_tick,
    r_multiple,
    resolve_bracket,
    resolve_stop_loss,
    resolve_take_profit,
    size_by_risk,
)
from orders.domain.enums import Side
from orders.domain.errors import InvalidValue
from orders.domain.quotes import quote_figures

TICK = D("0.01")


def test_a_price_is_sent_as_typed():
    assert resolve_stop_loss(LegMode.PRICE, D("145.5"), side=Side.BUY, entry=D("150"), tick=TICK) == D("145.5")


def test_an_offset_stop_sits_below_a_buy_and_above_a_sell():
    assert resolve_stop_loss(LegMode.OFFSET, D("2"), side=Side.BUY, entry=D("150.25"), tick=TICK) == D("148.25")
    assert resolve_stop_loss(LegMode.OFFSET, D("2"), side=Side.SELL, entry=D("150.25"), tick=TICK) == D("152.25")


def test_a_percent_stop_is_rounded_away_from_the_entry_never_tighter():
    # 1 % of 150.37 is 1.5037: 148.8663 goes down to 148.86 for a buy, 151.8737 up to 151.88 for a sell
    assert resolve_stop_loss(LegMode.PERCENT, D("1"), side=Side.BUY, entry=D("150.37"), tick=TICK) == D("148.86")
    assert resolve_stop_loss(LegMode.PERCENT, D("1"), side=Side.SELL, entry=D("150.37"), tick=TICK) == D("151.88")


def test_a_percent_take_profit_is_rounded_toward_the_entry_never_further():
    assert resolve_take_profit(LegMode.PERCENT, D("2"), side=Side.BUY, entry=D("150.37"), tick=TICK,
                               stop_loss=None) == D("153.37")          # 153.3774 down
    assert resolve_take_profit(LegMode.PERCENT, D("2"), side=Side.SELL, entry=D("150.37"), tick=TICK,
                               stop_loss=None) == D("147.37")          # 147.3626 up


def test_a_take_profit_in_r_is_that_many_stop_distances_away():
    prices = resolve_bracket(side=Side.BUY, entry=D("150.00"), tick=TICK, stop_loss=(LegMode.OFFSET, D("1.25")),
                             take_profit=(LegMode.R, D("2")))
    assert (prices.stop_loss, prices.take_profit) == (D("148.75"), D("152.50"))
    short = resolve_bracket(side=Side.SELL, entry=D("150.00"), tick=TICK, stop_loss=(LegMode.PRICE, D("151")),
                            take_profit=(LegMode.R, D("1.5")))
    assert short.take_profit == D("148.50")


def test_a_take_profit_in_r_needs_a_stop():
    with pytest.raises(InvalidValue, match="needs a stop-loss") as caught:
        resolve_bracket(side=Side.BUY, entry=D("150"), tick=TICK, stop_loss=None, take_profit=(LegMode.R, D("2")))
    assert caught.value.details["field"] == "take_profit"


def test_a_stop_is_not_given_in_r_and_no_leg_is_zero_or_below():
    with pytest.raises(InvalidValue, match="not in R"):
        resolve_stop_loss(LegMode.R, D("1"), side=Side.BUY, entry=D("150"), tick=TICK)
    with pytest.raises(InvalidValue, match="greater than 0"):
        resolve_stop_loss(LegMode.OFFSET, D("0"), side=Side.BUY, entry=D("150"), tick=TICK)
    with pytest.raises(InvalidValue, match="at or below zero"):
        resolve_stop_loss(LegMode.PERCENT, D("100"), side=Side.BUY, entry=D("150"), tick=TICK)


def test_the_tick_grid_may_be_coarse():
    assert on_tick(D("101.37"), D("0.5"), side=Side.BUY) == D("101.0")
    assert on_tick(D("101.37"), D("0.5"), side=Side.SELL) == D("101.5")


def test_sizing_by_risk_never_loses_more_than_the_risk_set():
    assert size_by_risk(risk=D("500"), entry=D("150"), stop_loss=D("148.5"), step=D("1")) == D("333")
    assert size_by_risk(risk=D("100"), entry=D("30000"), stop_loss=D("29700"), step=D("0.001")) == D("0.333")
    with pytest.raises(InvalidValue, match="stop away from the entry"):
        size_by_risk(risk=D("500"), entry=D("150"), stop_loss=D("150"), step=D("1"))


def test_the_r_multiple_is_reward_over_risk():
    assert r_multiple(risk=D("20.00"), reward=D("30.00")) == D("1.50")
    assert r_multiple(risk=None, reward=D("30")) is None


def test_the_quote_shows_change_since_the_open_and_the_spread_in_bps():
    figures = quote_figures(bid=D("149.98"), ask=D("150.02"), last=D("150.00"), day_open=D("148.00"))
    assert (figures.change, figures.change_pct, figures.direction) == (D("2.00"), D("1.35"), "up")
    assert (figures.spread, figures.spread_bps) == (D("0.04"), D("2.7"))
    assert quote_figures(bid=D("1"), ask=D("1.01"), last=D("1"), day_open=None).change is None


def test_a_venue_without_a_price_grid_gets_the_computed_price_unrounded():
    # Binance reports tickSize 0 when its PRICE_FILTER is off: no grid to round to, and no division by zero
    assert on_tick(D("101.37"), D("0"), side=Side.BUY) == D("101.37")
    prices = resolve_bracket(side=Side.SELL, entry=D("30000.5"), tick=D("0"),
                             stop_loss=(LegMode.PERCENT, D("1")), take_profit=(LegMode.R, D("2")))
    assert (prices.stop_loss, prices.take_profit) == (D("30300.505"), D("29400.49"))


def test_a_venue_without_a_quantity_step_is_sized_to_the_finest_quantity_the_desk_counts():
    # 100 / 300 = 0.3333…: without a LOT_SIZE grid the size stops at 9 decimals, still never over the risk
    quantity = size_by_risk(risk=D("100"), entry=D("30000"), stop_loss=D("29700"), step=D("0"))
    assert quantity == D("0.333333333")
    assert quantity * D("300") <= D("100")
