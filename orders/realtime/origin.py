"""Websocket handshakes from a browser page must come from the desk's own origin (or one listed in
``DESK_CORS_ORIGINS``), exactly as /v1 HTTP requests (``orders/api/edge.py``). Browsers always send
``Origin`` on a websocket handshake; scripts usually send none and are let through to authenticate
as usual. The ``Host`` must be one of ``ALLOWED_HOSTS``, as Django requires of HTTP, so a page that
rebinds its own name to the desk's address is not "same origin" either. A refused handshake is
closed before it is accepted, which daphne answers with 403."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from orders.api.edge import origin_allowed
from orders.metrics import API_EDGE_REFUSALS

log = logging.getLogger(__name__)


class SameOriginValidator:
    """``require_origin``: refuse a handshake with no ``Origin`` at all (the desk's own socket, which only
    its page opens)."""

    def __init__(self, application, *, require_origin: bool = False) -> None:
        self.application = application
        self.require_origin = require_origin

    async def __call__(self, scope, receive, send):
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin, host = headers.get("origin"), headers.get("host", "")
        scheme = "https" if scope.get("scheme") == "wss" else "http"
        if host and not validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
            return await self._refuse(scope, receive, send, f"host {host[:200]!r}")
        if origin is None and self.require_origin:
            return await self._refuse(scope, receive, send, "a client without an Origin")
        if origin is not None and not origin_allowed(origin, scheme=scheme, host=host):
            return await self._refuse(scope, receive, send, f"foreign origin {origin[:200]!r}")
        return await self.application(scope, receive, send)

    @staticmethod
    async def _refuse(scope, receive, send, what: str) -> None:
        log.warning("refused websocket %s from %s", scope.get("path"), what)
        API_EDGE_REFUSALS.inc(reason="ws_origin")
        await receive()                       # the websocket.connect message
        await send({"type": "websocket.close", "code": 4403})
