"""ASGI entry point: HTTP goes to Django; websockets to the desk's consumers."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingdesk.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from orders.realtime.routing import websocket_application  # noqa: E402
from tradingdesk.serving import complete_reason_phrases, remember_content_types  # noqa: E402

remember_content_types()
complete_reason_phrases()

http_app = django_app
if settings.SERVE_STATIC:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    http_app = ASGIStaticFilesHandler(django_app)

application = ProtocolTypeRouter({"http": http_app, "websocket": websocket_application})
