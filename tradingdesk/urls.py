from django.contrib import admin
from django.urls import include, path
from django.views.defaults import page_not_found

from orders.api import health
from orders.api.errors import error_response
from tradingdesk.api import api

urlpatterns = [
    path("livez", health.livez),
    path("readyz", health.readyz),
    path("health", health.health),
    path("metrics", health.prometheus),
    path("v1/", api.urls),
    path("admin/", admin.site.urls),
    path("", include("orders.web.urls")),
]


def handler404(request, exception=None):
    """Unknown paths under /v1 answer in the API's envelope; the rest get Django's page."""
    if request.path.startswith("/v1/"):
        return error_response("INVALID_REQUEST", f"Invalid request: no route {request.method} {request.path}", 404)
    return page_not_found(request, exception)
