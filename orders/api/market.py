"""/v1/quotes and /v1/bars: market data from the account's broker."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone

from orders.api.common import CODES_4XX, PooledRouter, account_of, broker_for
from orders.api.schemas import BarOut, ErrorOut, QueryLimit, QuoteOut, UtcDatetime
from orders.domain.enums import Timeframe
from orders.domain.errors import InvalidValue

router = PooledRouter(tags=["market data"], pool="market")
ERRORS = {code: ErrorOut for code in (*CODES_4XX, 503)}
DEFAULT_BARS = 100
MAX_BARS = 1000


@router.get("/quotes/{anypath:symbol}", response={200: QuoteOut, **ERRORS}, summary="Latest quote")
def get_quote(request: HttpRequest, symbol: str):
    broker = broker_for(account_of(request))
    return QuoteOut.of(broker.quote(symbol, now=timezone.now()))


@router.get("/bars/{anypath:symbol}", response={200: list[BarOut], **ERRORS}, summary="OHLCV bars, oldest first")
def get_bars(request: HttpRequest, symbol: str, timeframe: Timeframe, start: UtcDatetime | None = None,
             end: UtcDatetime | None = None, limit: QueryLimit | None = None):
    """Bars of `timeframe` ending with the one containing `end` (default now); from `start` when given.
    At most `limit` bars (default 100, at most 1000)."""
    end = min(end or timezone.now(), timezone.now())
    count = DEFAULT_BARS if limit is None else limit
    if start is not None:
        if start > end:
            raise InvalidValue("start", "must not be after end", provided=start.isoformat())
        span = int((end - start).total_seconds() // timeframe.seconds) + 1
        count = min(count, span) if limit is not None else min(span, MAX_BARS)
    count = min(count, MAX_BARS)
    if count == 0:
        return []
    broker = broker_for(account_of(request))
    bars = broker.bars(symbol, timeframe=timeframe.value, seconds=timeframe.seconds, end=end, count=count)
    return [BarOut.of(b) for b in bars]
