"""Which hosts one Binance configuration names, and nothing else.

``BINANCE_BASE_URL`` is the one base setting: the REST API lives there, and the WebSocket API (the user-data
stream, which carries the API key in its subscription) is derived from it:

* one of Binance's own REST hosts (production, testnet, demo mode) → that environment's WebSocket API host,
  from the table below (NOTES §3.1);
* any other host (a proxy, a local fake) → the same host and port, ``ws://`` for ``http://`` and ``wss://``
  for ``https://``, path ``/ws-api/v3``.

``BINANCE_WS_API_URL`` overrides the derived URL (a proxy that serves the two on different ports, say). So the
key only ever goes to the REST host that was configured, to the WebSocket API of the same Binance environment,
or to a URL configured by name: a base URL pointing at a proxy or a fake never sends it to production.
"""

from __future__ import annotations

from urllib.parse import urlsplit

WS_API_PATH = "/ws-api/v3"
LIVE_WS_API_URL = "wss://ws-api.binance.com:443/ws-api/v3"
TESTNET_WS_API_URL = "wss://ws-api.testnet.binance.vision/ws-api/v3"
DEMO_WS_API_URL = "wss://demo-ws-api.binance.com/ws-api/v3"

# Binance's own REST hosts (https, default port) → the WebSocket API of the same environment
BINANCE_WS_API_URLS = {
    "api.binance.com": LIVE_WS_API_URL,
    "api-gcp.binance.com": LIVE_WS_API_URL,
    "api1.binance.com": LIVE_WS_API_URL,
    "api2.binance.com": LIVE_WS_API_URL,
    "api3.binance.com": LIVE_WS_API_URL,
    "api4.binance.com": LIVE_WS_API_URL,
    "testnet.binance.vision": TESTNET_WS_API_URL,
    "api1.testnet.binance.vision": TESTNET_WS_API_URL,
    "demo-api.binance.com": DEMO_WS_API_URL,
}


def rest_base_url(value: str) -> str:
    """The REST base as the adapter joins paths to it (``/api/v3/...``): no trailing slash and no ``/api``
    (Binance's docs write the base with it). Raises ValueError for anything but an http(s) URL with a host."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    return value.strip().rstrip("/").removesuffix("/api").rstrip("/")


def ws_api_url(base_url: str, *, override: str = "") -> str:
    """The WebSocket API URL for a REST base URL (the rule in this module's docstring)."""
    if override:
        parts = urlsplit(override.strip())
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"{override!r} is not a ws:// or wss:// URL with a host")
        return override.strip()
    parts = urlsplit(rest_base_url(base_url))
    if parts.scheme == "https" and parts.port in (None, 443) and parts.hostname in BINANCE_WS_API_URLS:
        return BINANCE_WS_API_URLS[parts.hostname]
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{WS_API_PATH}"
