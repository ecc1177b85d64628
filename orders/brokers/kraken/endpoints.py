"""Where the Kraken adapter connects: one base setting, every other endpoint derived from it.

``KRAKEN_BASE_URL`` names the REST host (``https://api.kraken.com`` by default). The authenticated WebSocket
API, which carries the ``executions`` stream and receives the token, is derived from it:

* Kraken's own REST host (``api.kraken.com``) → ``wss://ws-auth.kraken.com/v2``, Kraken's published pairing;
* any other host (a local fake, a gateway, a recording proxy) → the same host and port, ``ws://`` for an
  ``http://`` base and ``wss://`` for ``https://``, path ``/v2``.

``KRAKEN_WS_AUTH_URL`` overrides the derived address when a non-Kraken host serves its WebSocket elsewhere.
So the API key (REST) and the WebSocket token only ever travel to a host the configuration named: the base
host, Kraken's pair for it, or the override. The REST calls follow no redirect (``brokers.http``) and the
stream follows none to another origin (``stream.py``), so no answer can send them elsewhere either.

Pure: no I/O, no Django.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

DEFAULT_BASE_URL = "https://api.kraken.com"
KRAKEN_REST_HOST = "api.kraken.com"
KRAKEN_WS_AUTH_URL = "wss://ws-auth.kraken.com/v2"
_WS_SCHEMES = {"http": "ws", "https": "wss"}


class EndpointError(ValueError):
    """A configured URL the adapter cannot use (the factory turns it into ImproperlyConfigured)."""


def check_base_url(base_url: str) -> str:
    """The REST base as given, once it is an absolute http(s) URL with a host."""
    parts = urlsplit(base_url)
    if parts.scheme not in _WS_SCHEMES or not parts.hostname:
        raise EndpointError(f"KRAKEN_BASE_URL must be an http:// or https:// URL with a host, not {base_url!r}")
    return base_url.rstrip("/")


def kraken_ws_auth_url(base_url: str, override: str | None = None) -> str:
    """The authenticated WebSocket address for a REST base (rule in the module docstring)."""
    if override:
        parts = urlsplit(override)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise EndpointError(f"KRAKEN_WS_AUTH_URL must be a ws:// or wss:// URL with a host, not {override!r}")
        return override
    parts = urlsplit(check_base_url(base_url))
    if parts.hostname == KRAKEN_REST_HOST:
        return KRAKEN_WS_AUTH_URL
    return urlunsplit((_WS_SCHEMES[parts.scheme], parts.netloc.rpartition("@")[2], "/v2", "", ""))

