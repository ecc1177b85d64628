"""The pure rules of four-eyes approvals: which limit changes loosen, who is the same person, and an order kept
in a request comes back exactly as it was asked for."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.domain.approvals import (
    is_loosening,
    is_same_person,
    level_text,
    loosened,
    order_from_payload,
    order_payload,
)
from orders.domain.enums import OrderType, Side, TimeInForce, TrailingType
from orders.domain.orders import OrderRequest

D = Decimal


@pytest.mark.parametrize(("name", "before", "after", "looser"), [
    ("max_notional_hard", D("10000"), D("50000"), True),        # a higher cap
    ("max_notional_hard", D("10000"), None, True),              # no cap at all
    ("max_notional_hard", D("10000"), D("5000"), False),        # a lower cap
    ("max_notional_hard", None, D("5000"), False),              # a cap where there was none
    ("max_notional_hard", D("10000"), D("10000.0000"), False),  # the same, however it is written
    ("daily_orders_hard", 10, 11, True),
    ("daily_loss_hard", D("400"), D("500"), True),
    ("protection_slow_seconds", D("2"), D("5"), True),          # alerts later
    ("approval_notional_above", D("50000"), None, True),        # no more approvals
    ("approval_notional_above", None, D("50000"), False),
    ("duplicate_window_seconds", 30, 10, True),                 # a shorter window warns about fewer orders
    ("duplicate_window_seconds", 30, None, True),
    ("duplicate_window_seconds", 10, 30, False),
    ("flatten_on_hard_halt", True, False, True),                # a hard halt that no longer flattens
    ("flatten_on_hard_halt", False, True, False),
    ("approval_ttl_minutes", 15, 60, True),                     # a request approved later, on older facts
    ("approval_ttl_minutes", 60, 15, False),
    ("orders_per_second", 5, 0, True),                          # 0 is no limit for the throttle
    ("orders_per_minute", 100, 0, True),
    ("orders_per_second", 0, 5, False),                         # a limit where there was none
    ("orders_per_second", 0, None, False),                      # no limit either way
    ("orders_per_minute", None, 0, False),
])
def test_a_change_loosens_when_it_lets_more_through(name, before, after, looser):
    assert is_loosening(name, before, after) is looser


def test_loosened_names_only_the_levels_raised_in_the_order_given():
    before = {"max_quantity_hard": D("100"), "daily_loss_soft": D("100"), "daily_loss_hard": D("400")}
    after = {"daily_loss_hard": D("300"), "max_quantity_hard": None, "daily_loss_soft": D("150")}
    assert loosened(before, after) == ["max_quantity_hard", "daily_loss_soft"]


@pytest.mark.parametrize(("one", "other", "same"), [
    ("user:rita", "user:rita", True),
    ("user:" + "r" * 150, ("user:" + "r" * 150)[:150], True),  # a long name as the request kept it
    ("user:rita", "admin:rita", True),           # the desk and the admin: one person
    ("user:rita", "user:rob", False),
    ("key:abc123", "user:abc123", False),        # a key is no person
    ("command:trading_state", "user:rita", False),
])
def test_the_same_person_is_found_whichever_door_they_came_through(one, other, same):
    assert is_same_person(one, other) is same


def test_a_level_reads_as_a_person_says_it():
    assert [level_text(v) for v in (D("25.0000000000"), None, True, 15)] == ["25", "no limit", "on", "15"]


def test_an_order_kept_in_a_request_comes_back_exactly_as_asked():
    request = OrderRequest(symbol="AAPL", side=Side.BUY, quantity=D("500"), order_type=OrderType.LIMIT,
                           limit_price=D("187.50"), stop_loss=D("180"), take_profit=D("200.25"),
                           time_in_force=TimeInForce.DAY, client_order_id="web-1",
                           stop_loss_trailing_type=TrailingType.PERCENT)
    payload = order_payload(request)
    assert payload["quantity"] == "500" and payload["side"] == "BUY" and payload["limit_price"] == "187.5"
    again = order_from_payload(payload)
    assert again == request and again.fingerprint() == request.fingerprint()
