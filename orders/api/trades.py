"""/v1/trades: fills, newest first."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from orders import selectors, wire
from orders.api.common import CODES_4XX, account_of, wire_response
from orders.api.schemas import ErrorOut, QueryLimit, TradeOut, UtcDatetime

router = Router(tags=["trades"])
ERRORS = {code: ErrorOut for code in (*CODES_4XX, 503)}


@router.get("/trades", response={200: list[TradeOut], **ERRORS}, summary="Fills, newest first")
def list_trades(request: HttpRequest, symbol: str | None = None, order_id: str | None = None,
                since: UtcDatetime | None = None, until: UtcDatetime | None = None,
                limit: QueryLimit | None = None):
    """One trade per fill. `since` is inclusive, `until` exclusive."""
    fills = selectors.trade_list(account=account_of(request), symbol=symbol or None, order_id=order_id,
                                 since=since, until=until, limit=limit)
    return wire_response([wire.trade_out(f) for f in fills])
