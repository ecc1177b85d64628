from __future__ import annotations

from decimal import Decimal

import pytest

from orders.domain.enums import PositionSide, Side
from orders.domain.positions import FLAT, Netting, apply_fill, exposure_increase, fee_in_kind

D = Decimal
BUY, SELL = Side.BUY, Side.SELL


def _fills(*fills: tuple[Side, str, str], start: Netting = FLAT) -> Netting:
    position = start
    for side, quantity, price in fills:
        position = apply_fill(position, side=side, quantity=D(quantity), price=D(price))
    return position


# -- longs -----------------------------------------------------------------------------------------------


def test_a_buy_from_flat_opens_a_long_at_the_fill_price():
    position = _fills((BUY, "10", "150"))
    assert position == Netting(D("10"), D("150"), D("0"))
    assert position.side is PositionSide.LONG


def test_adding_to_a_long_re_averages_the_entry_price():
    position = _fills((BUY, "10", "150"), (BUY, "30", "170"))
    assert position.quantity == D("40")
    assert position.average_price == D("165")     # (10 × 150 + 30 × 170) / 40
    assert position.realized_pnl == 0


def test_a_partial_sell_realises_pnl_on_the_closed_part_and_keeps_the_average():
    position = _fills((BUY, "10", "150"), (SELL, "4", "160"))
    assert position.quantity == D("6")
    assert position.average_price == D("150")
    assert position.realized_pnl == D("40")       # 4 × (160 − 150)


def test_a_losing_partial_sell_realises_a_loss():
    position = _fills((BUY, "10", "150"), (SELL, "5", "140"))
    assert position.realized_pnl == D("-50")


def test_selling_the_whole_long_closes_it_to_flat():
    position = _fills((BUY, "10", "150"), (SELL, "10", "155.5"))
    assert position.quantity == 0
    assert position.average_price == 0
    assert position.realized_pnl == D("55")
    assert position.side is None


def test_selling_past_flat_flips_to_a_short_at_the_fill_price():
    position = _fills((BUY, "10", "150"), (SELL, "25", "160"))
    assert position.quantity == D("-15")
    assert position.average_price == D("160")
    assert position.realized_pnl == D("100")      # only the 10 closed realise
    assert position.side is PositionSide.SHORT


def test_realised_pnl_accumulates_across_round_trips():
    position = _fills((BUY, "10", "100"), (SELL, "10", "110"), (BUY, "5", "200"), (SELL, "5", "190"))
    assert position.quantity == 0
    assert position.realized_pnl == D("50")       # +100 then −50


def test_fractional_quantities_net_exactly():
    position = _fills((BUY, "0.1", "50000"), (BUY, "0.2", "51000"), (SELL, "0.3", "52000"))
    assert position.quantity == 0
    assert position.realized_pnl == D("0.1") * 2000 + D("0.2") * 1000


# -- shorts ----------------------------------------------------------------------------------------------


def test_a_sell_from_flat_opens_a_short():
    position = _fills((SELL, "10", "150"))
    assert position == Netting(D("-10"), D("150"), D("0"))
    assert position.side is PositionSide.SHORT


def test_adding_to_a_short_re_averages_the_entry_price():
    position = _fills((SELL, "10", "150"), (SELL, "10", "160"))
    assert position.quantity == D("-20")
    assert position.average_price == D("155")


def test_buying_back_part_of_a_short_below_entry_realises_a_profit():
    position = _fills((SELL, "10", "150"), (BUY, "4", "140"))
    assert position.quantity == D("-6")
    assert position.average_price == D("150")
    assert position.realized_pnl == D("40")


def test_buying_back_a_short_above_entry_realises_a_loss():
    position = _fills((SELL, "10", "150"), (BUY, "10", "155"))
    assert position.quantity == 0
    assert position.realized_pnl == D("-50")


def test_buying_past_flat_flips_a_short_to_a_long_at_the_fill_price():
    position = _fills((SELL, "10", "150"), (BUY, "12", "145"))
    assert position.quantity == D("2")
    assert position.average_price == D("145")
    assert position.realized_pnl == D("50")


# -- unrealised pnl and guards ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fill_side", "mark", "expected"), [
    (BUY, "160", "100"),
    (BUY, "140", "-100"),
    (SELL, "140", "100"),
    (SELL, "160", "-100"),
])
def test_unrealised_pnl_follows_the_mark_in_the_position_direction(fill_side, mark, expected):
    position = _fills((fill_side, "10", "150"))
    assert position.unrealized_pnl(D(mark)) == D(expected)


def test_a_flat_position_has_no_unrealised_pnl():
    assert FLAT.unrealized_pnl(D("123")) == 0


@pytest.mark.parametrize("quantity", ["0", "-1"])
def test_it_refuses_a_fill_without_a_positive_quantity(quantity):
    with pytest.raises(ValueError, match="positive"):
        apply_fill(FLAT, side=BUY, quantity=D(quantity), price=D("150"))


def test_applying_a_fill_leaves_the_original_position_untouched():
    before = _fills((BUY, "10", "150"))
    apply_fill(before, side=SELL, quantity=D("5"), price=D("160"))
    assert before == Netting(D("10"), D("150"), D("0"))


# -- exposure_increase -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("held", "side", "quantity", "expected"), [
    ("0", BUY, "10", "10"),          # opening a long
    ("0", SELL, "10", "10"),         # opening a short
    ("10", BUY, "5", "5"),           # growing a long
    ("-10", SELL, "5", "5"),         # growing a short
    ("10", SELL, "4", "0"),          # reducing a long
    ("10", SELL, "10", "0"),         # closing a long
    ("-10", BUY, "10", "0"),         # closing a short
    ("10", SELL, "25", "15"),        # flipping: 10 close, 15 open a short
    ("10", SELL, "15", "5"),         # flipping to a smaller short still opens one
    ("-10", BUY, "30", "20"),        # flipping the other way
    ("0.25", SELL, "0.4", "0.15"),
])
def test_exposure_increase_counts_what_opens_or_grows_a_position(held, side, quantity, expected):
    assert exposure_increase(D(held), side=side, quantity=D(quantity)) == D(expected)


def test_a_fee_taken_in_the_coin_bought_leaves_less_held_at_the_same_cost():
    bought = apply_fill(FLAT, side=Side.BUY, quantity=Decimal("0.01"), price=Decimal("50000"))
    held = fee_in_kind(bought, fee=Decimal("0.00001"))
    assert held.quantity == Decimal("0.00999")
    assert held.quantity * held.average_price == Decimal("500")      # 0.01 × 50,000 paid, spread over what is held


def test_no_fee_in_kind_leaves_the_position_as_it_was():
    bought = apply_fill(FLAT, side=Side.BUY, quantity=Decimal("2"), price=Decimal("10"))
    assert fee_in_kind(bought, fee=Decimal("0")) == bought
