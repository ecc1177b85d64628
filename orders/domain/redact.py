"""Scrub secrets from text and structures before they reach a log line or an error body."""

from __future__ import annotations

import re
from typing import Any

_SECRET_WORDS = ("apikey", "api_key", "api-key", "secret", "token", "password", "authorization", "signature")
_PATTERN = re.compile(r"(?i)\b(" + "|".join(re.escape(w) for w in _SECRET_WORDS) + r")(\s*[=:]\s*)(\S+)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_DESK_KEY = re.compile(r"\btdk_[A-Za-z0-9_-]{8,}")
REDACTED = "***REDACTED***"


def redact_text(text: str) -> str:
    text = _PATTERN.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _DESK_KEY.sub(REDACTED, text)


def redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: (REDACTED if _is_secret_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and any(w in key.lower() for w in _SECRET_WORDS)
