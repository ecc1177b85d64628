from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from orders.brokers import get_broker


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    broker = get_broker()
    return render(request, "orders/home.html", {
        "broker": broker,
        "keyless": settings.API_ALLOW_KEYLESS,
        "port": settings.GATEWAY_PORT,
    })
