"""The benchmarks' URLconf (``bench.settings``): the desk's routes and error handlers, plus the bare ninja
baseline at ``/bench/`` (``bench/ninja_bare.py``)."""

from django.conf import urls as django_urls
from django.urls import path

from bench.ninja_bare import bench_api
from tradingdesk import urls as desk_urls

urlpatterns = [path("bench/", bench_api.urls), *desk_urls.urlpatterns]

# the desk's error handlers (Django's own where the desk keeps the default), so an answer is the same here
handler400, handler403, handler404, handler500 = (
    getattr(desk_urls, name, getattr(django_urls, name))
    for name in ("handler400", "handler403", "handler404", "handler500")
)
