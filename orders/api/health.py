"""Probes and metrics, outside /v1 and without auth: /livez, /readyz, /health, /metrics."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from orders import metrics
from orders.brokers import get_broker
from orders.wire import DetailedHealthStatusOut, HealthStatusOut, ProviderHealthOut, ReadyStatusOut


@require_GET
def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse(HealthStatusOut.build(status="ok").to_wire())


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    broker = get_broker()
    if not _database_ok():
        return JsonResponse(ReadyStatusOut.build(ready=False, providers=[], provider_count=0,
                                                 message="database unavailable").to_wire(), status=503)
    return JsonResponse(ReadyStatusOut.build(ready=True, providers=[broker.name], provider_count=1).to_wire())


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    broker = get_broker()
    status = broker.status(now=timezone.now())
    provider = ProviderHealthOut.build(platform=broker.name, connected=status.connected)
    return JsonResponse(DetailedHealthStatusOut.build(
        status="connected" if status.connected else "degraded", version=settings.VERSION, git_sha=settings.GIT_SHA,
        providers=[provider]).to_wire())


@require_GET
def prometheus(request: HttpRequest) -> HttpResponse:
    """Every process of the desk on this machine in one scrape: web processes and engines (orders/metrics.py)."""
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE)
