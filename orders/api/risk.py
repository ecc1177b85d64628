"""/v1 risk controls: trading state, kill switch, alerts (extensions beyond the gateway protocol)."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from ninja import Schema
from pydantic import Field

from orders import wire
from orders.api.common import (
    CODES_4XX,
    PooledRouter,
    account_of,
    actor_of,
    broker_for,
    optional_body,
    optional_body_openapi,
    wire_response,
)
from orders.api.schemas import ErrorOut
from orders.domain.errors import AlertNotFound
from orders.models import Alert, TradingState
from orders.services.alerts import alert_acknowledge
from orders.services.risk import kill_switch, trading_state_set

router = PooledRouter(tags=["risk"], pool="risk")
ERRORS = {code: ErrorOut for code in (*CODES_4XX, 503)}


class TradingStateIn(Schema):
    state: TradingState
    reason: str = Field("", max_length=500)


class TradingStateOut(Schema):
    account: str
    trading_state: TradingState


class KillSwitchIn(Schema):
    flatten: bool = Field(False, description="also close every position at market")


class KillSwitchOut(Schema):
    account: str
    trading_state: TradingState
    cancelled_count: int
    cancelled_order_ids: list[str]
    kept_order_ids: list[str]
    closing_order_ids: list[str]
    failures: list[dict]


class AlertOut(Schema):
    id: str
    kind: str
    status: str
    symbol: str
    message: str
    details: dict
    raised_at: datetime
    escalated_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    comment: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None


class AcknowledgeIn(Schema):
    comment: str = Field(max_length=500)


def alert_out(alert: Alert) -> dict:
    body = {"id": str(alert.id), "kind": alert.kind, "status": alert.status, "symbol": alert.symbol,
            "message": alert.message, "details": alert.details, "raised_at": wire.ts(alert.raised_at)}
    if alert.escalated_at:
        body["escalated_at"] = wire.ts(alert.escalated_at)
    if alert.acknowledged_at:
        body.update(acknowledged_by=alert.acknowledged_by, acknowledged_at=wire.ts(alert.acknowledged_at),
                    comment=alert.ack_comment)
    if alert.resolved_at:
        body.update(resolved_at=wire.ts(alert.resolved_at), resolution=alert.resolution)
    return body


@router.get("/trading-state", response={200: TradingStateOut, **ERRORS}, summary="Account trading state")
def get_trading_state(request: HttpRequest):
    account = account_of(request)
    account.refresh_from_db(fields=["trading_state"])
    return wire_response({"account": account.name, "trading_state": account.trading_state})


@router.put("/trading-state", response={200: TradingStateOut, **ERRORS}, summary="Set the trading state")
def put_trading_state(request: HttpRequest, payload: TradingStateIn):
    """ACTIVE, REDUCING (only orders that shrink a position) or HALTED (nothing new; exits still work)."""
    account = trading_state_set(account=account_of(request), state=payload.state, actor=actor_of(request),
                                reason=payload.reason)
    return wire_response({"account": account.name, "trading_state": account.trading_state})


@router.post("/kill-switch", response={200: KillSwitchOut, **ERRORS}, summary="Kill switch",
             openapi_extra=optional_body_openapi(KillSwitchIn))
def post_kill_switch(request: HttpRequest):
    """Halt the account, cancel every working order and, with `flatten`, close every position.
    Without `flatten` the stop-loss/take-profit legs of open positions are kept (listed as kept)."""
    payload = optional_body(request, KillSwitchIn)
    account = account_of(request)
    receipt = kill_switch(account=account, broker=broker_for(account), actor=actor_of(request),
                          flatten=payload.flatten)
    return wire_response(receipt.as_dict())


@router.get("/alerts", response={200: list[AlertOut], **ERRORS}, summary="Risk alerts, live first")
def list_alerts(request: HttpRequest, status: str | None = None):
    alerts = Alert.objects.filter(account=account_of(request))
    if status:
        alerts = alerts.filter(status=status.upper())
    return wire_response([alert_out(a) for a in alerts.order_by("status", "-raised_at")[:500]])


@router.post("/alerts/{alert_id}/acknowledge", response={200: AlertOut, **ERRORS}, summary="Acknowledge an alert")
def acknowledge_alert(request: HttpRequest, alert_id: str, payload: AcknowledgeIn):
    account = account_of(request)
    if not Alert.objects.filter(pk=_uuid_or_none(alert_id), account=account).exists():
        raise AlertNotFound(alert_id)
    alert = alert_acknowledge(alert_id=alert_id, actor=actor_of(request), comment=payload.comment)
    return wire_response(alert_out(alert))


def _uuid_or_none(value: str):
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None
