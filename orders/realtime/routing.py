"""Websocket routes: the /v1/ws stream for scripts and the desk's browser socket (plus, with
``DESK_BENCH_ENDPOINTS``, the benchmark's bare broadcast at /bench/ws)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.conf import settings
from django.urls import path

from orders.realtime.consumers import StrategyStreamConsumer
from orders.realtime.desk import DeskLiveConsumer
from orders.realtime.origin import SameOriginValidator

websocket_urlpatterns = [
    path("v1/ws", SameOriginValidator(StrategyStreamConsumer.as_asgi())),
    path("ws/desk/", SameOriginValidator(AuthMiddlewareStack(DeskLiveConsumer.as_asgi()), require_origin=True)),
]
if settings.DESK_BENCH_ENDPOINTS:
    # bench/bench_stream.py's baseline: a bare Channels group broadcast, mounted only for the benchmark
    from bench.bench_stream import BareBroadcastConsumer

    websocket_urlpatterns.insert(0, path("bench/ws", BareBroadcastConsumer.as_asgi()))
websocket_application = URLRouter(websocket_urlpatterns)
