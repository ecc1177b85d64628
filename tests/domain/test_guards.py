"""The day's loss and drawdown levels: which one the equity breaches, once a day, hard before soft."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

from orders.domain.guards import GuardLevels, Level, day_loss, drawdown, guard_breach, trading_day

LEVELS = GuardLevels(daily_loss_soft=D("100"), daily_loss_hard=D("300"), drawdown_soft=D("150"),
                     drawdown_hard=D("400"))


def breach(equity, *, start="10000", peak="10000", tripped=Level.NONE, levels=LEVELS):
    return guard_breach(levels=levels, start_equity=D(start), peak_equity=D(peak), equity=D(equity), tripped=tripped)


def test_loss_is_what_the_day_lost_and_never_negative():
    assert day_loss(start_equity=D("10000"), equity=D("9875.50")) == D("124.50")
    assert day_loss(start_equity=D("10000"), equity=D("10200")) == 0


def test_drawdown_is_measured_from_the_days_peak():
    assert drawdown(peak_equity=D("10500"), equity=D("10300")) == D("200")
    assert drawdown(peak_equity=D("10500"), equity=D("10600")) == 0


def test_a_loss_under_every_level_breaches_nothing():
    assert breach("9950") is None


def test_a_loss_reaching_the_soft_level_is_a_soft_breach():
    found = breach("9900")
    assert (found.level, found.measure, found.amount, found.limit) == (Level.SOFT, "loss", D("100"), D("100"))


def test_a_loss_past_the_hard_level_is_a_hard_breach_not_a_soft_one():
    found = breach("9650")
    assert (found.level, found.measure, found.amount) == (Level.HARD, "loss", D("350"))


def test_a_day_up_can_still_breach_its_drawdown_from_the_peak():
    found = breach("10350", peak="10500")            # up 350 on the day, 150 off the peak
    assert (found.level, found.measure, found.amount) == (Level.SOFT, "drawdown", D("150"))


def test_an_equity_above_the_recorded_peak_is_its_own_peak():
    assert breach("10600", peak="10500") is None


def test_a_level_already_tripped_today_does_not_fire_again():
    assert breach("9850", tripped=Level.SOFT) is None


def test_after_the_soft_level_only_the_hard_level_is_armed():
    assert breach("9650", tripped=Level.SOFT).level == Level.HARD


def test_nothing_fires_after_the_hard_level():
    assert breach("5000", tripped=Level.HARD) is None


def test_levels_left_empty_never_fire():
    assert breach("1", levels=GuardLevels()) is None
    assert breach("9000", levels=GuardLevels(drawdown_hard=D("2000"))) is None


def test_a_zero_level_fires_at_the_first_loss_but_not_at_none():
    zero = GuardLevels(daily_loss_hard=D("0"))
    assert breach("10000", levels=zero) is None
    assert breach("9999.99", levels=zero).level == Level.HARD


def test_the_trading_day_is_the_date_in_the_accounts_timezone():
    late_in_new_york = datetime(2026, 3, 3, 2, 30, tzinfo=UTC)       # 21:30 on the 2nd in New York
    assert trading_day(late_in_new_york, "America/New_York") == date(2026, 3, 2)
    assert trading_day(late_in_new_york, "Asia/Tokyo") == date(2026, 3, 3)
    assert trading_day(late_in_new_york, "UTC") == date(2026, 3, 3)


def test_an_unknown_timezone_counts_the_day_in_utc():
    assert trading_day(datetime(2026, 3, 3, 2, 30, tzinfo=UTC), "Mars/Olympus") == date(2026, 3, 3)
