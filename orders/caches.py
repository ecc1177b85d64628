"""The order path's caches, in one place: one of the fast path's three named parts (with ``rows.py``, the
hand-compiled SQL, and ``writelock.py``, the SQLite writer queue).

Every cache here is kept per process and answers only for a few seconds, or only while a version it was
taken at is still current; none is shared between processes. Each says below what it saves and how it stays
correct. ``DESK_CACHES_COLD`` turns all of them off (every read misses and reads the database): the order
suites run once that way too (``tests/test_cold_caches.py``), so no behaviour depends on a cache being warm.

* ``api_keys``: an API key verified in the last 5 s, by digest (never the key itself). Saves the key lookup
  (and its hash check) on every request of a script's burst. Correct because revoking a key empties it in
  the revoking process, and other processes stop answering it within 5 s; the account it holds is used for
  who and where only: services read cash and the trading state afresh under the account's row lock.
* ``pretrade_limits``: an account's hard pre-trade limits, for 5 s. Saves a read of the limits row on every
  order. Correct because setting limits empties it in that process; other processes follow within 5 s.
* ``breaker_open``: whether an account's adapter breaker is open, for 1 s. Saves a query on every entry.
  Correct because tripping and resetting empty it in that process; a breaker is about outages that last
  far longer than a second, and exits are never refused by it.
* ``exposure_books``: an account's exposure (positions and what working orders hold back), remembered at
  the account's newest outbox event id. Saves reading every working order on every order's check. Correct
  because every change of an order or a position commits with an outbox event of its account, in id order,
  so a book is used only while that id is still the newest (``services/exposure.py`` says how, and
  ``DESK_VERIFY_EXPOSURE`` compares every book used with a fresh read).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import connection

V = TypeVar("V")


def caches_cold() -> bool:
    return settings.DESK_CACHES_COLD


class Remembered(Generic[V]):
    """Answers kept for ``seconds``, at most ``most`` of them (beyond that it starts over rather than grow)."""

    def __init__(self, seconds: float, *, most: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.most, self.clock = seconds, most, clock
        self._kept: dict[Hashable, tuple[float, V]] = {}

    def get(self, key: Hashable) -> V | None:
        """The answer kept for ``key``, or None when there is none, it is older than ``seconds``, or the
        caches are cold."""
        kept = self._kept.get(key)
        if kept is None or kept[0] <= self.clock() or caches_cold():
            return None
        return kept[1]

    def put(self, key: Hashable, value: V) -> V:
        if len(self._kept) >= self.most and key not in self._kept:
            self._kept.clear()
        self._kept[key] = (self.clock() + self.seconds, value)
        return value

    def forget(self, key: Hashable) -> None:
        self._kept.pop(key, None)

    def clear(self) -> None:
        self._kept.clear()


class VersionedBooks:
    """Per-account values remembered at a version (an outbox event id): a newer version replaces an older one,
    never the other way round. Keyed by database too, so two test databases never share a book."""

    def __init__(self) -> None:
        self._books: dict[tuple[str, str, int], Any] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(account_id: int) -> tuple[str, str, int]:
        return connection.alias, str(connection.settings_dict["NAME"]), account_id

    def get(self, account_id: int) -> Any | None:
        return None if caches_cold() else self._books.get(self._key(account_id))

    def remember(self, account_id: int, book: Any, *, version: int) -> None:
        key = self._key(account_id)
        with self._lock:
            known = self._books.get(key)
            if known is None or known.version < version:
                self._books[key] = book

    def clear(self) -> None:
        with self._lock:
            self._books.clear()


api_keys: Remembered[Any] = Remembered(5.0)              # key digest -> the verified client
pretrade_limits: Remembered[Any] = Remembered(5.0)       # account id -> its hard limits
breaker_open: Remembered[bool] = Remembered(1.0)         # account id -> adapter breaker open?
exposure_books = VersionedBooks()                        # account id -> Exposure at its newest event id


def caches_clear() -> None:
    """Forget everything (tests, whose transactions roll back and reuse ids)."""
    for cache in (api_keys, pretrade_limits, breaker_open, exposure_books):
        cache.clear()
