"""The benchmarks' ASGI application (``bench.settings``): the desk's, with the bare Channels broadcast of
``bench/bench_stream.py`` (``BareBroadcastConsumer``) routed at ``/bench/ws`` besides the desk's sockets."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

# the desk's HTTP side exactly as it serves it (Django set up, static files, daphne's patches)
from tradingdesk.asgi import http_app  # noqa: E402  # isort: skip

from bench.bench_stream import BareBroadcastConsumer  # noqa: E402
from orders.realtime.routing import websocket_urlpatterns  # noqa: E402

websocket_application = URLRouter([path("bench/ws", BareBroadcastConsumer.as_asgi()), *websocket_urlpatterns])
application = ProtocolTypeRouter({"http": http_app, "websocket": websocket_application})
