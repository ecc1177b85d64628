"""Websocket routes: the /v1/ws stream for scripts and the desk's browser socket."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from orders.realtime.consumers import StrategyStreamConsumer
from orders.realtime.desk import DeskLiveConsumer

websocket_urlpatterns = [
    path("v1/ws", StrategyStreamConsumer.as_asgi()),
    path("ws/desk/", AllowedHostsOriginValidator(AuthMiddlewareStack(DeskLiveConsumer.as_asgi()))),
]
websocket_application = URLRouter(websocket_urlpatterns)
