"""Trailing stop-losses: the engine's TrailingBook against a brute-force reference, and trailing legs end to
end — trailed by the venue (a native TRAILING_STOP) where the strategy allows, emulated by the engine
(moving a resting STOP up behind the market, never down) where it does not (PROTOCOL §9)."""

from __future__ import annotations

import random
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from django.utils import timezone

from orders.domain.enums import Side, TrailingType
from orders.engine import engine_tick
from orders.exits.book import TrailingBook, TrailingLeg
from orders.exits.decide import TRAIL_MOVE_THRESHOLD
from orders.models import ExitLeg, Fill, Order
from tests.exits.conftest import D, exit_leg, legs, position_quantity, quote, shock, submit, use_profile

# -- the book against a brute-force reference -------------------------------------------------------------


class ReferenceBook:
    """Every leg checked on every quote: the obviously correct O(legs) version."""

    def __init__(self) -> None:
        self.legs: dict[str, dict] = {}

    def add(self, leg_id, symbol, side, distance, kind, peak) -> None:
        self.legs[leg_id] = {"symbol": symbol, "side": side, "distance": distance, "kind": kind, "peak": peak}

    def remove(self, leg_id) -> None:
        self.legs.pop(leg_id, None)

    @staticmethod
    def level(leg) -> Decimal:
        offset = leg["peak"] * leg["distance"] / 100 if leg["kind"] is TrailingType.PERCENT else leg["distance"]
        return leg["peak"] - offset if leg["side"] is Side.SELL else leg["peak"] + offset

    def on_quote(self, symbol, bid, ask) -> tuple[set[str], set[str]]:
        triggered, moved = set(), set()
        for leg_id, leg in list(self.legs.items()):
            if leg["symbol"] != symbol:
                continue
            sell = leg["side"] is Side.SELL
            price = bid if sell else ask
            if (price > leg["peak"]) if sell else (price < leg["peak"]):
                leg["peak"] = price
                moved.add(leg_id)
            if (price <= self.level(leg)) if sell else (price >= self.level(leg)):
                triggered.add(leg_id)
                moved.discard(leg_id)
                del self.legs[leg_id]
        return triggered, moved


def _random_leg(rnd: random.Random, price: Decimal) -> tuple:
    side = rnd.choice([Side.SELL, Side.BUY])
    kind = rnd.choice([TrailingType.ABSOLUTE, TrailingType.PERCENT])
    choices = ("0.25", "0.5", "1", "1.5", "3") if kind is TrailingType.ABSOLUTE else ("0.2", "0.5", "1", "2")
    return side, D(rnd.choice(choices)), kind, price + D(rnd.randint(-60, 60)) / 100


@pytest.mark.parametrize("seed", range(12))
def test_the_trailing_book_agrees_with_a_brute_force_reference_on_a_random_price_path(seed):
    rnd = random.Random(seed)
    book, reference = TrailingBook(), ReferenceBook()
    prices = {"AAPL": D("150.00"), "MSFT": D("40.00")}
    retired: list[str] = []          # ids removed or triggered: a later add may reuse one
    next_id = 0
    for step in range(2500):
        symbol = rnd.choice(sorted(prices))
        action = rnd.random()
        if action < 0.2:
            if retired and rnd.random() < 0.8:
                leg_id = retired.pop(rnd.randrange(len(retired)))
            else:
                next_id += 1
                leg_id = f"leg-{next_id}"
            side, distance, kind, peak = _random_leg(rnd, prices[symbol])
            book.add(TrailingLeg(leg_id, symbol, side, distance, kind, peak))
            reference.add(leg_id, symbol, side, distance, kind, peak)
        elif action < 0.3 and reference.legs:
            leg_id = rnd.choice(sorted(reference.legs))
            book.remove(leg_id)
            reference.remove(leg_id)
            retired.append(leg_id)
        else:
            prices[symbol] = max(D("1.00"), prices[symbol] + D(rnd.randint(-10, 10)) / 100)
            spread = D(rnd.randint(1, 4)) / 100
            bid, ask = prices[symbol] - spread, prices[symbol] + spread
            fired, moved = book.on_quote(symbol, bid=bid, ask=ask)
            expected_fired, expected_moved = reference.on_quote(symbol, bid, ask)
            assert {leg.leg_id for leg in fired} == expected_fired, f"step {step}: {symbol} {bid}/{ask}"
            if expected_moved:
                assert moved, f"step {step}: peaks moved but the book did not say so"
            retired.extend(sorted(expected_fired))
        assert len(book) == len(reference.legs), f"step {step}"
        if step % 25 == 0 or action >= 0.3:
            for leg_id, ref in reference.legs.items():
                leg = book.get(leg_id)
                assert leg is not None, f"step {step}: {leg_id} lost"
                assert (leg.peak, leg.level()) == (ref["peak"], reference.level(ref)), f"step {step}: {leg_id}"


def test_a_leg_re_added_after_removal_trails_with_its_new_distance():
    book = TrailingBook()
    book.add(TrailingLeg("tight", "AAPL", Side.SELL, D("0.5"), TrailingType.ABSOLUTE, D("150")))
    book.add(TrailingLeg("leg-1", "AAPL", Side.SELL, D("1"), TrailingType.ABSOLUTE, D("150")))
    book.on_quote("AAPL", bid=D("151"), ask=D("151.02"))           # both lifted to 151
    book.remove("leg-1")
    book.add(TrailingLeg("leg-1", "AAPL", Side.SELL, D("3"), TrailingType.ABSOLUTE, D("151")))   # re-armed wider

    fired, _ = book.on_quote("AAPL", bid=D("150.4"), ask=D("150.42"))
    assert [leg.leg_id for leg in fired] == ["tight"]
    fired, _ = book.on_quote("AAPL", bid=D("149.9"), ask=D("149.92"))   # 1.1 below the peak: inside 3

    assert list(fired) == [], "the leg fired at the distance it had before it was removed"
    assert book.get("leg-1").level() == D("148")
    fired, _ = book.on_quote("AAPL", bid=D("148"), ask=D("148.02"))
    assert [leg.leg_id for leg in fired] == ["leg-1"]


def test_buy_side_and_percent_legs_trail_the_ask_downwards():
    book = TrailingBook()
    book.add(TrailingLeg("short-cover", "AAPL", Side.BUY, D("2"), TrailingType.PERCENT, D("100")))
    book.on_quote("AAPL", bid=D("89.98"), ask=D("90"))
    assert book.get("short-cover").peak == D("90") and book.get("short-cover").level() == D("91.8")
    fired, _ = book.on_quote("AAPL", bid=D("91.5"), ask=D("91.79"))
    assert list(fired) == []
    fired, _ = book.on_quote("AAPL", bid=D("91.78"), ask=D("91.8"))
    assert [leg.leg_id for leg in fired] == ["short-cover"]
    assert len(book) == 0


# -- trailing stop-loss legs end to end -----------------------------------------------------------------

def _tick(account, broker, clock, book: TrailingBook, seconds: int = 1) -> None:
    clock.shift(seconds)
    engine_tick(accounts=[account], broker=broker, now=timezone.now(), book=book)


def _trailing_entry(client, side: str = "BUY", **extra) -> str:
    return submit(client, side=side, client_order_id="trail-1", stop_loss_trailing_distance="1",
                  stop_loss_trailing_type="ABSOLUTE", **extra)["id"]


def _to_tick(price: Decimal, side: Side) -> Decimal:
    return price.quantize(D("0.01"), rounding=ROUND_FLOOR if side is Side.SELL else ROUND_CEILING)


@pytest.mark.django_db
@pytest.mark.parametrize("profile_name", ["none", "native_oco"])
def test_with_pending_legs_a_trailing_stop_loss_is_a_venue_trailing_stop(client, account, settings, clock,
                                                                         profile_name):
    """Pending legs go to the venue as separate orders, and the paper venue trails natively. (Native OCO
    needs a fixed stop_loss to pair; a trailing one leaves the entry on the pending strategy.)"""
    broker = use_profile(settings, profile_name)
    entry_id = _trailing_entry(client, take_profit=quote(client)["ask"] + 10)
    book = TrailingBook()
    _tick(account, broker, clock, book, 0)
    leg = exit_leg(entry_id, "stop_loss")
    assert (leg.strategy, leg.emulated) == ("pending", False)
    [stop] = legs(entry_id)["stop_loss"]
    body = client.get(f"/v1/orders/{stop.id}").json()
    assert (body["order_type"], body["trailing_distance"], body["trailing_type"]) == ("TRAILING_STOP", "1",
                                                                                    "ABSOLUTE")
    assert body["client_order_id"] == "trail-1-sl" and body["reduce_only"] is True
    entry_price = Order.objects.get(pk=entry_id).average_fill_price

    # the market rises 3 %, then gives back about 1.5 %: the venue's stop trails up and fires on the way down
    shock(broker, "3", after=1)
    for _ in range(5):
        _tick(account, broker, clock, book)
    assert position_quantity(account) == 10
    shock(broker, "1.5", after=1)
    for _ in range(3):
        _tick(account, broker, clock, book)
    assert position_quantity(account) == 0
    exit_fill = Fill.objects.get(order=stop)
    assert exit_fill.price > entry_price + 1, "the trailed stop locked in the rise"
    take_profit = legs(entry_id)["take_profit"][0]
    take_profit.refresh_from_db()
    assert take_profit.status == "CANCELLED"


@pytest.mark.django_db
def test_a_trailing_stop_loss_with_a_fixed_floor_is_emulated_even_without_a_native_strategy(
        client, account, settings, clock):
    broker = use_profile(settings, "none")
    floor = quote(client)["ask"] - D("0.5")
    entry_id = _trailing_entry(client, stop_loss=floor)
    _tick(account, broker, clock, TrailingBook(), 0)
    assert exit_leg(entry_id, "stop_loss").emulated is True
    [stop] = legs(entry_id)["stop_loss"]
    assert (stop.order_type, stop.stop_price) == ("STOP", floor), "the floor is tighter than fill - 1"


@pytest.mark.django_db
@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_in_a_native_bracket_the_engine_trails_the_stop_and_never_backs_off(client, account, settings, clock, side):
    profile_name = "native_bracket"
    broker = use_profile(settings, profile_name)
    stop_side = Side.SELL if side == "BUY" else Side.BUY
    favourable = {"BUY": "3", "SELL": "-3"}[side]
    pullback = {"BUY": "2.5", "SELL": "-2.5"}[side]        # back by ~0.75: less than the 1.00 distance
    through = {"BUY": "1.5", "SELL": "-1.5"}[side]         # back by ~2.2: through the trailed stop
    take_profit = quote(client)["ask"] + 10 if side == "BUY" else quote(client)["bid"] - 10
    entry_id = _trailing_entry(client, side=side, take_profit=take_profit)
    book = TrailingBook()
    _tick(account, broker, clock, book, 0)
    leg = exit_leg(entry_id, "stop_loss")
    assert leg.emulated is True and leg.strategy == profile_name
    [stop] = legs(entry_id)["stop_loss"]
    assert stop.order_type == "STOP"
    entry_price = Order.objects.get(pk=entry_id).average_fill_price
    history = [stop.stop_price]
    best = entry_price

    def watch(ticks: int) -> None:
        nonlocal best
        for _ in range(ticks):
            _tick(account, broker, clock, book)
            q = broker.quote("AAPL", now=timezone.now())
            best = max(best, q.bid) if stop_side is Side.SELL else min(best, q.ask)
            stop.refresh_from_db()
            history.append(stop.stop_price)

    shock(broker, favourable, after=1)
    watch(4)
    expected = _to_tick(best - 1 if stop_side is Side.SELL else best + 1, stop_side)
    # moved whenever the level changed by TRAIL_MOVE_THRESHOLD (0.1 %) or more
    assert abs(expected - stop.stop_price) < stop.stop_price * TRAIL_MOVE_THRESHOLD, f"{best} - 1 vs {history}"
    assert abs(history[0] - stop.stop_price) > 2, "the stop followed a 3 % move"
    assert exit_leg(entry_id, "stop_loss").trail_peak == best
    assert stop.status == "OPEN"

    shock(broker, pullback, after=1)
    watch(4)
    assert stop.stop_price == history[4], "a pullback never moves the stop back"
    assert stop.status == "OPEN" and position_quantity(account) != 0

    ordered = history if stop_side is Side.SELL else [-p for p in history]
    assert ordered == sorted(ordered), f"the stop only ever moves in the position's favour: {history}"

    shock(broker, through, after=1)
    watch(3)
    stop.refresh_from_db()
    assert stop.status == "FILLED" and position_quantity(account) == 0
    exit_price = Fill.objects.get(order=stop).price
    gained = exit_price - entry_price if side == "BUY" else entry_price - exit_price
    assert gained > 0, "the trailed stop turned the rise into a profit"
    assert ExitLeg.objects.get(entry_id=entry_id, role="stop_loss").status == "FILLED"
    assert [o.status for o in legs(entry_id)["take_profit"]] == ["CANCELLED"]
