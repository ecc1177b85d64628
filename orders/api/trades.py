"""/v1/trades: fills, newest first."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from orders import selectors
from orders.api.common import CODES_4XX, PAGED_DOC, PooledRouter, account_of, paged_response
from orders.api.schemas import ErrorOut, PageCursor, PageLimit, TradeOut, UtcDatetime

router = PooledRouter(tags=["trades"])
ERRORS = {code: ErrorOut for code in (*CODES_4XX, 503)}


@router.get("/trades", response={200: list[TradeOut], **ERRORS}, summary="Fills, newest first",
            openapi_extra={"responses": {200: PAGED_DOC}})
def list_trades(request: HttpRequest, response: HttpResponse, symbol: str | None = None, order_id: str | None = None,
                since: UtcDatetime | None = None, until: UtcDatetime | None = None,
                limit: PageLimit | None = None, cursor: PageCursor = None):
    """One trade per fill, a page at a time (`limit`, `cursor`). `since` is inclusive, `until` exclusive."""
    page = selectors.trade_list(account=account_of(request), symbol=symbol or None, order_id=order_id,
                                since=since, until=until, limit=limit, cursor=cursor)
    return paged_response(request, response, [TradeOut.of(f) for f in page.rows], page.next_cursor)
