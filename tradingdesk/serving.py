"""Tuning of the web server the desk runs under (daphne, on twisted)."""

from __future__ import annotations

import functools
import sys


def remember_content_types() -> None:
    """twisted parses the Content-Type of every request with a body through the standard library's e-mail
    parser, about a fifth of a millisecond per POST. It is a pure function of the header, and clients send
    the same few values, so its answers are remembered (a bounded cache). Only under twisted."""
    http = sys.modules.get("twisted.web.http")
    parse = getattr(http, "_parseContentType", None)
    if parse is None or hasattr(parse, "cache_info"):
        return
    http._parseContentType = functools.lru_cache(maxsize=256)(parse)
