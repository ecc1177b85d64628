"""/v1 risk controls: trading state, kill switch, alerts (extensions beyond the gateway protocol)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Schema, Status
from pydantic import Field

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
from orders.domain.errors import AlertNotFound
from orders.models import ApprovalRequest, TradingState
from orders.services.alerts import alert_acknowledge
from orders.services.approvals import trading_state_ask
from orders.services.risk import kill_switch
from orders.wire import AlertOut, ApprovalOut, ErrorOut, KillSwitchOut, TradingStateOut

router = PooledRouter(tags=["risk"], pool="risk")
ERRORS = {code: ErrorOut for code in (*CODES_4XX, 503)}


class TradingStateIn(Schema):
    state: TradingState
    reason: str = Field("", max_length=500)


class KillSwitchIn(Schema):
    flatten: bool = Field(False, description="also close every position at market")


class AcknowledgeIn(Schema):
    comment: str = Field(max_length=500)


@router.get("/trading-state", response={200: TradingStateOut, **ERRORS}, summary="Account trading state")
def get_trading_state(request: HttpRequest):
    account = account_of(request)
    account.refresh_from_db(fields=["trading_state"])
    return TradingStateOut.of(account)


@router.put("/trading-state", response={200: TradingStateOut, 202: ApprovalOut, **ERRORS},
            summary="Set the trading state")
def put_trading_state(request: HttpRequest, payload: TradingStateIn):
    """ACTIVE, REDUCING (only orders that shrink a position) or HALTED (nothing new; exits still work).
    Leaving HALTED needs a second person: the answer is 202 with the request waiting for a risk person's approval
    on the risk view (a `reason` is required; asked again, the same request is answered)."""
    account = account_of(request)
    done = trading_state_ask(account=account, state=payload.state, actor=actor_of(request), reason=payload.reason)
    if isinstance(done, ApprovalRequest):
        return Status(202, ApprovalOut.of(done, account_name=account.name))
    return TradingStateOut.of(done)


@router.post("/kill-switch", response={200: KillSwitchOut, **ERRORS}, summary="Kill switch",
             openapi_extra=optional_body_openapi(KillSwitchIn))
def post_kill_switch(request: HttpRequest):
    """Halt the account, cancel every working order and, with `flatten`, close every position.
    Without `flatten` the stop-loss/take-profit legs of open positions are kept (listed as kept)."""
    payload = optional_body(request, KillSwitchIn)
    account = account_of(request)
    receipt = kill_switch(account=account, broker=broker_for(account), actor=actor_of(request),
                          flatten=payload.flatten)
    return KillSwitchOut.of(receipt)


@router.get("/alerts", response={200: list[AlertOut], **ERRORS}, summary="Risk alerts, live first")
def list_alerts(request: HttpRequest, status: str | None = None):
    return [AlertOut.of(a) for a in selectors.alerts_listed(account=account_of(request), status=status)]


@router.post("/alerts/{alert_id}/acknowledge", response={200: AlertOut, **ERRORS}, summary="Acknowledge an alert")
def acknowledge_alert(request: HttpRequest, alert_id: str, payload: AcknowledgeIn):
    account = account_of(request)
    if not selectors.alert_exists(account=account, alert_id=alert_id):
        raise AlertNotFound(alert_id)
    return AlertOut.of(alert_acknowledge(alert_id=alert_id, actor=actor_of(request), comment=payload.comment))
