"""The keys this process verified in the last few seconds, by digest (never the key itself), so a script's
burst of requests costs one lookup. It lives below the /v1 edge that fills it because the key services empty
it: a revoked key stops working here at once, and in other processes within ``KEY_CACHE_SECONDS``. The
cached account is used for who and where only: services read cash and trading state afresh."""

from __future__ import annotations

from typing import Any

from orders.memo import Remembered

KEY_CACHE_SECONDS = 5.0
recent_keys: Remembered[Any] = Remembered(KEY_CACHE_SECONDS)     # digest -> api.auth.ApiClient


def forget_keys() -> None:
    recent_keys.clear()
