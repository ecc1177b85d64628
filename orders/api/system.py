"""/v1/account, /v1/capabilities, /v1/status, /v1/circuit-breakers."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone

from orders.api.common import CODES_4XX, PooledRouter, account_of, actor_of, broker_for
from orders.api.schemas import AccountOut, CapabilitiesOut, CircuitBreakersOut, ConnectionStatusOut, ErrorOut
from orders.services.accounts import account_snapshot
from orders.services.breakers import breaker_snapshot, breakers_reset

router = PooledRouter(tags=["account and system"])
ERRORS = {code: ErrorOut for code in (*CODES_4XX, 503)}


@router.get("/account", response={200: AccountOut, **ERRORS}, summary="Account balance, equity and margin")
def get_account(request: HttpRequest):
    account = account_of(request)
    figures = account_snapshot(account=account, broker=broker_for(account), now=timezone.now())
    return AccountOut.of(figures)


@router.get("/capabilities", response={200: CapabilitiesOut, **ERRORS}, summary="What the broker supports")
def get_capabilities(request: HttpRequest):
    return CapabilitiesOut.of(broker_for(account_of(request)).capabilities)


@router.get("/status", response={200: ConnectionStatusOut, **ERRORS}, summary="Broker connection status")
def get_status(request: HttpRequest):
    return ConnectionStatusOut.of(broker_for(account_of(request)).status(now=timezone.now()))


@router.get("/circuit-breakers", response={200: CircuitBreakersOut, **ERRORS}, summary="Circuit breakers")
def get_circuit_breakers(request: HttpRequest):
    return CircuitBreakersOut.of(breaker_snapshot(account=account_of(request)))


@router.post("/circuit-breakers/reset", response={200: CircuitBreakersOut, **ERRORS},
             summary="Reset both circuit breakers")
def reset_circuit_breakers(request: HttpRequest):
    """Refused with `409 RESET_COOLDOWN` within 60 seconds of the previous reset."""
    return CircuitBreakersOut.of(breakers_reset(account=account_of(request), actor=actor_of(request)))
