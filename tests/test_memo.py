"""orders.memo.Remembered: answers kept for a few seconds, bounded."""

from __future__ import annotations

from orders.memo import Remembered


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_answer_is_kept_for_its_seconds_and_no_longer():
    clock = Clock()
    memo = Remembered(5.0, clock=clock)
    assert memo.put("k", "v") == "v"

    clock.now += 4.9
    assert memo.get("k") == "v"
    clock.now += 0.1
    assert memo.get("k") is None


def test_it_starts_over_rather_than_grow_past_its_bound():
    memo = Remembered(5.0, most=3, clock=Clock())
    for key in "abcd":
        memo.put(key, key)

    memo.put("e", "e")

    assert [memo.get(k) for k in "abcde"] == [None, None, None, None, "e"]


def test_clear_forgets_everything():
    memo = Remembered(5.0, clock=Clock())
    memo.put("k", 1)
    memo.clear()
    assert memo.get("k") is None
