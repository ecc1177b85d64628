"""Websocket routes: the /v1/ws stream for scripts and the desk's browser socket. (The benchmarks' settings,
``bench.settings``, serve ``bench.asgi``, which adds their bare broadcast at /bench/ws to these routes.)"""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path

from orders.realtime.consumers import StrategyStreamConsumer
from orders.realtime.desk import DeskLiveConsumer
from orders.realtime.origin import SameOriginValidator
from orders.realtime.risk_all import RiskAllConsumer

websocket_urlpatterns = [
    path("v1/ws", SameOriginValidator(StrategyStreamConsumer.as_asgi())),
    path("ws/desk/", SameOriginValidator(AuthMiddlewareStack(DeskLiveConsumer.as_asgi()), require_origin=True)),
    path("ws/risk/all/", SameOriginValidator(AuthMiddlewareStack(RiskAllConsumer.as_asgi()), require_origin=True)),
]
websocket_application = URLRouter(websocket_urlpatterns)
