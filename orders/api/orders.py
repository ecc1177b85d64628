"""/v1/orders: submit, list, history, get, modify, cancel one, cancel all."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import Query, Status

from orders import selectors
from orders.api.common import (
    CODES_4XX,
    PAGED_DOC,
    PooledRouter,
    account_of,
    actor_of,
    broker_for,
    paged_response,
    parse_statuses,
)
from orders.api.schemas import (
    CancelAllOut,
    CancelOrderOut,
    ErrorOut,
    ModifyOrderIn,
    ModifyOrderOut,
    OrderHandleOut,
    OrderIn,
    OrderOut,
    PageCursor,
    PageLimit,
    UtcDatetime,
)
from orders.domain.errors import InvalidValue
from orders.domain.orders import OrderRequest
from orders.metrics import ORDER_SUBMIT_SECONDS, ORDERS_SUBMITTED
from orders.services import orders as order_services
from orders.services import tickets

router = PooledRouter(tags=["orders"])

ERRORS = {code: ErrorOut for code in (*CODES_4XX, 501, 502, 503)}


def _request_from(payload: OrderIn) -> OrderRequest:
    return OrderRequest(
        symbol=payload.symbol, side=payload.side, quantity=payload.quantity, order_type=payload.order_type,
        limit_price=payload.limit_price, stop_price=payload.stop_price,
        trailing_distance=payload.trailing_distance, trailing_type=payload.trailing_type,
        stop_loss=payload.stop_loss, take_profit=payload.take_profit, time_in_force=payload.time_in_force,
        client_order_id=payload.client_order_id, oco_group_id=payload.oco_group_id,
        position_id=payload.position_id, reduce_only=payload.reduce_only, post_only=payload.post_only,
        hidden=payload.hidden, display_quantity=payload.display_quantity,
        stop_loss_trailing_distance=payload.stop_loss_trailing_distance,
        stop_loss_trailing_type=payload.stop_loss_trailing_type)


@router.post("/orders", response={201: OrderHandleOut, **ERRORS}, summary="Submit an order")
def submit_order(request: HttpRequest, response: HttpResponse, payload: OrderIn):
    """Check and place one order. `201` with the order handle; an identical retry of a
    `client_order_id` answers `201` with the order already placed (header `Idempotent-Replayed: true`)."""
    account = account_of(request)
    broker = broker_for(account)
    with ORDER_SUBMIT_SECONDS.time(platform=broker.name):
        # the ticket's one rule (services/tickets.py): for a script, soft pre-trade warnings stay advice
        result = tickets.ticket_submit(account=account, request=_request_from(payload), broker=broker,
                                       actor=actor_of(request))
    if result.created:
        ORDERS_SUBMITTED.inc(platform=broker.name)
    else:
        response["Idempotent-Replayed"] = "true"
    return Status(201, OrderHandleOut.of(result.order))


def _filters(symbol, status, side, client_order_id, oco_group_id, since, until, limit,
             cursor) -> selectors.OrderFilter:
    side_value = side.upper() if side and side == side.lower() else side
    if side_value not in (None, "BUY", "SELL"):
        raise InvalidValue("side", "must be BUY or SELL", provided=side)
    return selectors.OrderFilter(symbol=symbol or None, statuses=parse_statuses(status), side=side_value,
                                 client_order_id=client_order_id, oco_group_id=oco_group_id, since=since,
                                 until=until, limit=limit, cursor=cursor)


@router.get("/orders", response={200: list[OrderOut], **ERRORS}, summary="List orders",
            openapi_extra={"responses": {200: PAGED_DOC}})
def list_orders(request: HttpRequest, response: HttpResponse, symbol: str | None = None,
                status: list[str] = Query(None), side: str | None = None, client_order_id: str | None = None,
                oco_group_id: str | None = None,
                since: UtcDatetime | None = None, until: UtcDatetime | None = None,
                limit: PageLimit | None = None, cursor: PageCursor = None):
    """The account's orders, newest first, a page at a time (`limit`, `cursor`). `status` repeats or takes a
    comma-separated list."""
    filters = _filters(symbol, status, side, client_order_id, oco_group_id, since, until, limit, cursor)
    page = selectors.order_list(account=account_of(request), filters=filters)
    return paged_response(request, response, [OrderOut.of(o) for o in page.rows], page.next_cursor)


@router.get("/orders/history", response={200: list[OrderOut], **ERRORS}, summary="Finished orders",
            openapi_extra={"responses": {200: PAGED_DOC}})
def order_history(request: HttpRequest, response: HttpResponse, symbol: str | None = None,
                  status: list[str] = Query(None), side: str | None = None, client_order_id: str | None = None,
                oco_group_id: str | None = None,
                  since: UtcDatetime | None = None, until: UtcDatetime | None = None,
                  limit: PageLimit | None = None, cursor: PageCursor = None):
    """Filled, cancelled, rejected and expired orders, most recently finished first, a page at a time."""
    filters = _filters(symbol, status, side, client_order_id, oco_group_id, since, until, limit, cursor)
    page = selectors.order_history(account=account_of(request), filters=filters)
    return paged_response(request, response, [OrderOut.of(o) for o in page.rows], page.next_cursor)


@router.get("/orders/{order_id}", response={200: OrderOut, **ERRORS}, summary="One order")
def get_order(request: HttpRequest, order_id: str):
    return OrderOut.of(selectors.order_get(account=account_of(request), order_id=order_id))


@router.patch("/orders/{order_id}", response={200: ModifyOrderOut, **ERRORS}, summary="Modify an order")
def modify_order(request: HttpRequest, order_id: str, payload: ModifyOrderIn):
    account = account_of(request)
    changes = order_services.OrderChanges(**payload.model_dump())
    order = order_services.order_modify(account=account, order_id=order_id, changes=changes,
                                        broker=broker_for(account), actor=actor_of(request))
    return ModifyOrderOut.of(order)


@router.delete("/orders/{order_id}", response={200: CancelOrderOut, **ERRORS}, summary="Cancel an order")
def cancel_order(request: HttpRequest, order_id: str):
    account = account_of(request)
    order = order_services.order_cancel(account=account, order_id=order_id, broker=broker_for(account),
                                        actor=actor_of(request))
    return CancelOrderOut.of(order)


@router.delete("/orders", response={200: CancelAllOut, **ERRORS}, summary="Cancel all working orders")
def cancel_all_orders(request: HttpRequest, symbol: str | None = None):
    account = account_of(request)
    result = order_services.orders_cancel_all(account=account, broker=broker_for(account), symbol=symbol or None,
                                              actor=actor_of(request))
    return CancelAllOut.of(cancelled=result.cancelled, failed=result.failed)
