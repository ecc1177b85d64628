"""tradingdesk.serving: the web server's Content-Type parsing gives the same answers once remembered."""

from __future__ import annotations

import twisted.web.http as http

from tradingdesk.serving import remember_content_types


def test_remembered_content_types_parse_as_before(monkeypatch):
    original = getattr(http._parseContentType, "__wrapped__", http._parseContentType)   # asgi may have loaded
    monkeypatch.setattr(http, "_parseContentType", original)
    headers = [b"application/json", b"application/x-www-form-urlencoded; charset=utf-8",
               b'multipart/form-data; boundary="----x"', b"TEXT/Plain", b"nonsense"]
    before = [http._parseContentType(h) for h in headers]

    remember_content_types()
    remember_content_types()                      # a second call changes nothing

    assert [http._parseContentType(h) for h in headers * 2] == before * 2
    assert http._parseContentType.cache_info().hits == len(headers)
    assert before[:2] == [b"application/json", b"application/x-www-form-urlencoded"]
