"""Tuning of the web server the desk runs under (daphne, on twisted)."""

from __future__ import annotations

import functools
import sys
from http import HTTPStatus


def remember_content_types() -> None:
    """twisted parses the Content-Type of every request with a body through the standard library's e-mail
    parser, about a fifth of a millisecond per POST. It is a pure function of the header, and clients send
    the same few values, so its answers are remembered (a bounded cache). Only under twisted."""
    http = sys.modules.get("twisted.web.http")
    parse = getattr(http, "_parseContentType", None)
    if parse is None or hasattr(parse, "cache_info"):
        return
    http._parseContentType = functools.lru_cache(maxsize=256)(parse)


def complete_reason_phrases() -> None:
    """twisted's table of reason phrases lacks the newer statuses (422, 429, …) and sends "Unknown Status"
    for them; ASGI carries no phrase, so daphne's answer takes twisted's. Fill the gaps from the standard
    library's table, leaving twisted's own entries as they are. Only under twisted."""
    http = sys.modules.get("twisted.web.http")
    responses = getattr(http, "RESPONSES", None)
    if responses is None:
        return
    for status in HTTPStatus:
        responses.setdefault(status.value, status.phrase.encode("ascii"))
