"""A small in-process Prometheus registry: counters, gauges and histograms with labels,
rendered in the text exposition format by ``/metrics``. Series appear once recorded."""

from __future__ import annotations

import bisect
import threading
import time
from contextlib import contextmanager

_lock = threading.Lock()
_REGISTRY: list[_Metric] = []


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.values: dict[tuple, float] = {}
        _REGISTRY.append(self)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for key, value in sorted(self.values.items()):
            out.append(f"{self.name}{_labels(dict(key))} {value:g}")
        return out


class Counter(_Metric):
    kind = "counter"

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with _lock:
            self.values[key] = self.values.get(key, 0) + amount


class Gauge(_Metric):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        with _lock:
            self.values[tuple(sorted(labels.items()))] = value

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with _lock:
            self.values[key] = self.values.get(key, 0) + amount


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        super().__init__(name, help_text)
        self.buckets = buckets
        self.series: dict[tuple, dict] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with _lock:
            entry = self.series.setdefault(key, {"counts": [0] * len(self.buckets), "sum": 0.0, "count": 0})
            index = bisect.bisect_left(self.buckets, value)
            if index < len(self.buckets):
                entry["counts"][index] += 1
            entry["sum"] += value
            entry["count"] += 1

    @contextmanager
    def time(self, **labels: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - started, **labels)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, entry in sorted(self.series.items()):
            counts, total, count = entry["counts"], entry["sum"], entry["count"]
            labels = dict(key)
            running = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                running += n
                out.append(f"{self.name}_bucket{_labels({**labels, 'le': f'{bound:g}'})} {running}")
            out.append(f"{self.name}_bucket{_labels({**labels, 'le': '+Inf'})} {count}")
            out.append(f"{self.name}_sum{_labels(labels)} {total:g}")
            out.append(f"{self.name}_count{_labels(labels)} {count}")
        return out


def render() -> str:
    with _lock:
        lines = [line for metric in _REGISTRY if (metric.values or getattr(metric, "series", None))
                 for line in metric.lines()]
    return "\n".join(lines) + "\n"


ORDERS_SUBMITTED = Counter("gateway_orders_submitted_total", "Orders accepted through POST /v1/orders")
ORDER_SUBMIT_SECONDS = Histogram("gateway_order_submit_duration_seconds", "Order submission latency",
                                 (.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
WS_CONNECTIONS = Gauge("gateway_ws_connections_active", "Open /v1/ws connections")
WS_SLOW_CONSUMERS = Counter("gateway_ws_slow_consumer_disconnects", "Stream clients closed for being too slow")
WS_DISCONNECTS = Counter("gateway_ws_disconnects_total",
                         "Stream clients gone, by reason: closed_by_client, closed_by_server (slow or unresponsive), "
                         "lost (the connection dropped or stopped answering the server's pings)")
API_EDGE_REFUSALS = Counter("desk_api_refused_total",
                            "/v1 requests refused at the edge: foreign origin, non-JSON body, body too large")
