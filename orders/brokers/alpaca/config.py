"""How to reach Alpaca: keys and hosts. Apart from the adapter so its trade-updates stream needs only this."""

from __future__ import annotations

from dataclasses import dataclass, field

PAPER_URL = "https://paper-api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"


@dataclass(frozen=True)
class AlpacaConfig:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    base_url: str = PAPER_URL
    data_url: str = DATA_URL
    feed: str = "iex"

    @property
    def stream_url(self) -> str:
        """``wss://paper-api.alpaca.markets/stream`` for the paper host, likewise for live."""
        return self.base_url.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/stream"
