from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from orders.api import health
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

if settings.DESK_BENCH_ENDPOINTS:
    from bench.ninja_bare import bench_api

    urlpatterns.insert(0, path("bench/", bench_api.urls))
