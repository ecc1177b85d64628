"""Websocket routes: the /v1/ws stream for scripts and the desk's browser socket (plus, with
``DESK_BENCH_ENDPOINTS``, the benchmark's bare broadcast at /bench/ws)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.conf import settings
from django.urls import path

from orders.realtime.consumers import StrategyStreamConsumer
from orders.realtime.desk import DeskLiveConsumer

websocket_urlpatterns = [
    path("v1/ws", StrategyStreamConsumer.as_asgi()),
    path("ws/desk/", AllowedHostsOriginValidator(AuthMiddlewareStack(DeskLiveConsumer.as_asgi()))),
]
if settings.DESK_BENCH_ENDPOINTS:
    # bench/bench_stream.py's baseline: a bare Channels group broadcast, mounted only for the benchmark
    from bench.bench_stream import BareBroadcastConsumer

    websocket_urlpatterns.insert(0, path("bench/ws", BareBroadcastConsumer.as_asgi()))
websocket_application = URLRouter(websocket_urlpatterns)
