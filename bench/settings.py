"""The benchmarks' Django settings: the desk's, serving the benchmarks' bare baselines besides the desk
(``GET /bench/ping`` from ``bench.urls``, the ``/bench/ws`` broadcast from ``bench.asgi``).

Every benchmark that starts a server runs it with ``DJANGO_SETTINGS_MODULE=bench.settings``; the desk's own
settings know nothing of bench/."""

from tradingdesk.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
ASGI_APPLICATION = "bench.asgi.application"
