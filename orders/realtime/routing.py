"""Websocket routes. The /v1/ws stream and the desk's socket arrive with the live-stream work;
until then every websocket is refused with a clear close code."""

from channels.routing import URLRouter

websocket_urlpatterns: list = []
websocket_application = URLRouter(websocket_urlpatterns)
