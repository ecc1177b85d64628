"""/v1/positions: list, get, close one, close all."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone

from orders import selectors
from orders.api.common import (
    CODES_4XX,
    PooledRouter,
    account_of,
    actor_of,
    broker_for,
    optional_body,
    optional_body_openapi,
)
from orders.api.schemas import (
    ClosePositionIn,
    ErrorOut,
    ModifyPositionExitsIn,
    ModifyPositionExitsOut,
    OrderHandleOut,
    PositionOut,
)
from orders.domain.enums import OrderType
from orders.models import position_wire_id
from orders.services.accounts import mark_price
from orders.services.positions import position_close, position_move_exits, positions_close_all

router = PooledRouter(tags=["positions"])
ERRORS = {code: ErrorOut for code in (*CODES_4XX, 501, 502, 503)}


def _position_body(position, broker, now) -> PositionOut:
    mark = mark_price(broker, position.symbol, now=now, fallback=position.average_price)
    return PositionOut.of(position, mark=mark, position_id=position_wire_id(broker.name, position.symbol))


@router.get("/positions", response={200: list[PositionOut], **ERRORS}, summary="Open positions")
def list_positions(request: HttpRequest, symbol: str | None = None):
    account = account_of(request)
    broker, now = broker_for(account), timezone.now()
    positions = selectors.position_list(account=account, symbol=symbol or None)
    return [_position_body(p, broker, now) for p in positions]


@router.get("/positions/{anypath:position_id}", response={200: PositionOut, **ERRORS}, summary="One position")
def get_position(request: HttpRequest, position_id: str):
    account = account_of(request)
    position = selectors.position_lookup(account=account, position_id=position_id)
    return _position_body(position, broker_for(account), timezone.now())


@router.delete("/positions/{anypath:position_id}", response={200: OrderHandleOut, **ERRORS},
               summary="Close a position", openapi_extra=optional_body_openapi(ClosePositionIn))
def close_position(request: HttpRequest, position_id: str):
    """Send a reduce-only order against the position (all of it unless `quantity` is given); `200` with its handle."""
    body = optional_body(request, ClosePositionIn)
    account = account_of(request)
    order = position_close(account=account, position_id=position_id, broker=broker_for(account),
                           quantity=body.quantity, order_type=body.order_type or OrderType.MARKET,
                           limit_price=body.limit_price, actor=actor_of(request))
    return OrderHandleOut.of(order)


@router.delete("/positions", response={200: list[OrderHandleOut], **ERRORS}, summary="Close all positions")
def close_all_positions(request: HttpRequest, symbol: str | None = None):
    account = account_of(request)
    orders = positions_close_all(account=account, broker=broker_for(account), symbol=symbol or None,
                                 actor=actor_of(request))
    return [OrderHandleOut.of(o) for o in orders]


@router.patch("/positions/{anypath:position_id}", response={200: ModifyPositionExitsOut, **ERRORS},
              summary="Move a position's stop-loss / take-profit")
def move_position_exits(request: HttpRequest, position_id: str, payload: ModifyPositionExitsIn):
    account = account_of(request)
    moved = position_move_exits(account=account, position_id=position_id, broker=broker_for(account),
                                stop_loss=payload.stop_loss, take_profit=payload.take_profit,
                                actor=actor_of(request))
    return ModifyPositionExitsOut.of(position_id, moved)
