"""The benchmarks' baseline: a bare django-ninja endpoint, mounted at ``/bench/`` by ``bench/urls.py``, the
URLconf of the benchmarks' settings (``bench.settings``). No auth, no database."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import NinjaAPI

bench_api = NinjaAPI(title="bench", version="0", urls_namespace="bench", docs_url=None, openapi_url=None)


@bench_api.get("/ping")
def ping(request: HttpRequest) -> dict:
    return {"ok": True}
