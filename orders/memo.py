"""Answers a process keeps for a few seconds, so a burst of requests costs one lookup. Never shared between
processes (a verified API key stays where it was verified); a change made elsewhere shows within the delay."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Remembered(Generic[V]):
    def __init__(self, seconds: float, *, most: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.most, self.clock = seconds, most, clock
        self._kept: dict[Hashable, tuple[float, V]] = {}

    def get(self, key: Hashable) -> V | None:
        """The answer kept for ``key``, or None when there is none or it is older than ``seconds``."""
        kept = self._kept.get(key)
        return kept[1] if kept is not None and kept[0] > self.clock() else None

    def put(self, key: Hashable, value: V) -> V:
        if len(self._kept) > self.most:          # bounded: start over rather than grow
            self._kept.clear()
        self._kept[key] = (self.clock() + self.seconds, value)
        return value

    def clear(self) -> None:
        self._kept.clear()
