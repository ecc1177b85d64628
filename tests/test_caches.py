"""orders/caches.py: answers kept for a few seconds, bounded, and none at all when the caches are cold."""

from __future__ import annotations

import pytest

from orders.caches import Remembered, VersionedBooks


@pytest.fixture(autouse=True)
def warm(settings):
    """These tests are about the caches themselves: warm, whatever the run's DESK_CACHES_COLD."""
    settings.DESK_CACHES_COLD = False


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
    for key in "abc":
        memo.put(key, key)
    memo.put("a", "A")                       # a key it holds is replaced, not counted again
    assert [memo.get(k) for k in "abc"] == ["A", "b", "c"]

    memo.put("d", "d")                       # a fourth would pass the bound: it starts over

    assert [memo.get(k) for k in "abcd"] == [None, None, None, "d"]

def test_clear_forgets_everything():
    memo = Remembered(5.0, clock=Clock())
    memo.put("k", 1)
    memo.clear()
    assert memo.get("k") is None


def test_cold_caches_answer_nothing(settings):
    memo = Remembered(5.0, clock=Clock())
    memo.put("k", "v")
    settings.DESK_CACHES_COLD = True
    assert memo.get("k") is None
    settings.DESK_CACHES_COLD = False
    assert memo.get("k") == "v"


class Book:
    def __init__(self, version: int) -> None:
        self.version = version


def test_a_versioned_book_is_only_ever_replaced_by_a_newer_one(db, settings):
    books = VersionedBooks()
    books.remember(7, Book(3), version=3)
    books.remember(7, Book(2), version=2)              # a late commit of an older book is ignored
    assert books.get(7).version == 3
    books.remember(7, Book(5), version=5)
    assert books.get(7).version == 5
    settings.DESK_CACHES_COLD = True
    assert books.get(7) is None
