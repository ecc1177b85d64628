"""How to reach Alpaca: keys and hosts. Apart from the adapter so its trade-updates stream needs only this.

Every host follows the configuration, and the keys go nowhere it did not name:

* ``base_url`` (``ALPACA_BASE_URL``) is the trading API and the one setting a user normally gives.
* ``stream_url`` (``ALPACA_STREAM_URL``) defaults to ``base_url`` with ``ws(s)://`` and ``/stream``.
* ``data_url`` (``ALPACA_DATA_URL``) defaults to ``https://data.alpaca.markets`` only when ``base_url`` is one of
  Alpaca's own hosts (``*.alpaca.markets``): the keys already go to Alpaca, so its data host is Alpaca too.
  For any other ``base_url`` (a local fake, a proxy, a compatible server) the data API is ``base_url`` itself,
  so a key given for that server never travels to data.alpaca.markets unless ``ALPACA_DATA_URL`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
ALPACA_DOMAIN = "alpaca.markets"
HTTP_SCHEMES = ("http", "https")
STREAM_SCHEMES = ("ws", "wss")


def is_alpaca_host(url: str) -> bool:
    """Is ``url`` on Alpaca's own domain, over https?"""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host == ALPACA_DOMAIN or host.endswith("." + ALPACA_DOMAIN))


def default_data_url(base_url: str) -> str:
    """The market-data API when ``ALPACA_DATA_URL`` is not set (rule in the module docstring)."""
    return DATA_URL if is_alpaca_host(base_url) else base_url.rstrip("/")


def default_stream_url(base_url: str) -> str:
    """``wss://paper-api.alpaca.markets/stream`` for the paper host, likewise for live and any other base."""
    return base_url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/stream"


def url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why ``url`` cannot be used as a host of the adapter, or None."""
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        return f"{url!r} is not a {' or '.join(schemes)} URL with a host"
    return None


@dataclass(frozen=True)
class AlpacaConfig:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    base_url: str = PAPER_URL
    data_url: str = ""           # "" = derived from base_url (module docstring)
    feed: str = "iex"
    stream_url: str = ""         # "" = derived from base_url

    def __post_init__(self) -> None:
        if not self.data_url:
            object.__setattr__(self, "data_url", default_data_url(self.base_url))
        if not self.stream_url:
            object.__setattr__(self, "stream_url", default_stream_url(self.base_url))

    @property
    def hosts(self) -> frozenset[str]:
        """Every ``host:port`` the keys may be sent to: the three the configuration names."""
        return frozenset(_host_port(url) for url in (self.base_url, self.data_url, self.stream_url))


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme, 0)
    return f"{(parts.hostname or '').lower()}:{port}"
