"""ASGI entry point: HTTP goes to Django; websockets to the desk's consumers."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingdesk.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from orders.realtime.routing import websocket_application  # noqa: E402
from tradingdesk.serving import complete_reason_phrases, remember_content_types  # noqa: E402

remember_content_types()
complete_reason_phrases()

# static files are served by WhiteNoise's middleware (settings.SERVE_STATIC): hashed, compressed, cached
http_app = django_app
application = ProtocolTypeRouter({"http": http_app, "websocket": websocket_application})
