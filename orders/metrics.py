"""The desk's metrics, and the ``/metrics`` scrape that covers every process of the desk on this machine.

prometheus_client in multi-process mode: each process (web processes, engines, commands) writes its values
into files of its own (``counter_<pid>.db``, ``gauge_livesum_<pid>.db``, …) in one directory,
``PROMETHEUS_MULTIPROC_DIR``, and a scrape on any web process reads and adds them all up. The settings set
that variable from ``DESK_METRICS_DIR`` (default ``var/metrics``) before anything imports prometheus_client,
which chooses its mode at import. The directory's rules:

* **One directory per desk per machine**, shared by all its processes. No process empties it when it starts:
  a second web process or a restarted engine would erase what the others recorded. Empty it (``rm -r``) only
  while every process of the desk is stopped, to start the counts from zero.
* **Counters and histograms outlive their process**: a restarted web process does not take its earlier
  self's counts with it, so a total never goes back.
* **Gauges of live state are ``livesum``** (open sockets, leases held): every scrape drops the values of
  processes that no longer run (``mark_process_dead``), however they ended, SIGKILL included.
* **Every counter, histogram and non-live gauge has labels**, so a process that records nothing (``migrate``,
  a shell) leaves no file that outlives it.

The names the Trading Gateway's protocol gives (``gateway_…``, PROTOCOL.md §12.2) are kept with their labels;
the desk's own are ``desk_…``. Call sites pass labels as keywords: ``ORDERS_SUBMITTED.inc(platform="paper")``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager

import prometheus_client
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import CollectorRegistry, generate_latest, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.utils import floatToGoString

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4        # the text format every Prometheus reads

if os.environ.get(MULTIPROC_ENV) and not getattr(values.ValueClass, "_multiprocess", False):
    raise ImproperlyConfigured(f"prometheus_client was imported before {MULTIPROC_ENV} was set: every process "
                               "would count on its own. Import the settings first (tradingdesk/settings.py).")
prometheus_client.disable_created_metrics()     # no *_created series: a multi-process scrape has none either
if os.environ.get(MULTIPROC_ENV):
    # before this process records anything: a process id given out again (a container restarted, var/ on a
    # volume) must not start from the open sockets and leases of the dead process that last had it
    multiprocess.mark_process_dead(os.getpid(), os.environ[MULTIPROC_ENV])


class _Metric:
    """One prometheus_client metric, its labelled children kept by the labels as given: a record on the hot
    paths (every request, every frame to every socket) costs a dict lookup, not ``labels()``'s checks."""

    def __init__(self, metric) -> None:
        self.metric = metric
        self._children: dict[tuple, object] = {}

    def _child(self, labels: dict[str, str]):
        if not labels:
            return self.metric
        key = tuple(labels.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.metric.labels(**labels)
        return child


class Counter(_Metric):
    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        super().__init__(prometheus_client.Counter(name, help_text, labels))

    def inc(self, amount: float = 1, **labels: str) -> None:
        self._child(labels).inc(amount)


class Gauge(_Metric):
    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (), *, mode: str) -> None:
        super().__init__(prometheus_client.Gauge(name, help_text, labels, multiprocess_mode=mode))

    def set(self, value: float, **labels: str) -> None:
        self._child(labels).set(value)

    def inc(self, amount: float = 1, **labels: str) -> None:
        self._child(labels).inc(amount)


class Histogram(_Metric):
    def __init__(self, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(prometheus_client.Histogram(name, help_text, labels, buckets=buckets))

    def observe(self, value: float, **labels: str) -> None:
        self._child(labels).observe(value)

    def time(self, **labels: str) -> AbstractContextManager:
        return self._child(labels).time()


# -- the protocol's (PROTOCOL.md §12.2) ------------------------------------------------------------------------
ORDERS_SUBMITTED = Counter("gateway_orders_submitted_total", "Orders accepted through POST /v1/orders",
                           ["platform"])
ORDER_SUBMIT_SECONDS = Histogram("gateway_order_submit_duration_seconds", "Order submission latency", ["platform"],
                                 (.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
# livesum: the open sockets of every web process still running; a consumer takes its socket off however it ends
# (orders/realtime/consumers.py), and a process that died takes all of its own with it at the next scrape
WS_CONNECTIONS = Gauge("gateway_ws_connections_active", "Open /v1/ws connections", mode="livesum")
# the protocol's unlabelled gateway_ws_slow_consumer_disconnects is this counter's sum, added by render()
WS_SLOW_CONSUMERS = Counter("desk_ws_slow_client_cuts_total",
                            "Stream clients cut off by the server, by reason: slow_consumer (its queue filled up), "
                            "unresponsive (no answer to pings)", ["reason"])
PROTOCOL_SLOW_CONSUMERS = "gateway_ws_slow_consumer_disconnects"
WS_DISCONNECTS = Counter("gateway_ws_disconnects_total",
                         "Stream clients gone, by reason: closed_by_client, closed_by_server (slow or unresponsive), "
                         "lost (the connection dropped or stopped answering the server's pings)", ["reason"])

# -- the desk's ---------------------------------------------------------------------------------------------------
API_EDGE_REFUSALS = Counter("desk_api_refused_total",
                            "/v1 requests refused at the edge: foreign origin, non-JSON body, body too large",
                            ["reason"])
HTTP_REQUESTS = Counter("desk_http_requests_total",
                        "HTTP requests answered, by method, route (the URL pattern, 'unmatched' for none) and status",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("desk_http_request_duration_seconds",
                         "Time from a request's arrival to its response, by method and route", ["method", "route"],
                         (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
WS_FRAMES_SENT = Counter("desk_ws_frames_sent_total", "Frames sent to /v1/ws clients, by frame type", ["type"])
WS_RESUMES = Counter("desk_ws_resumes_total",
                     "/v1/ws connections that asked to resume (?last_event_id=), by outcome: resumed, or why "
                     "not (invalid, unknown, too_many)", ["outcome"])
ENGINE_TICK_SECONDS = Histogram("desk_engine_tick_duration_seconds", "Time one engine tick takes, by broker",
                                ["platform"], (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
# once per entry with exits: from its fill being recorded to the venue acknowledging its last exit leg (labelled, as
# every metric here: an unlabelled one would leave a file behind for every process that merely imports this module)
TIME_TO_PROTECTION = Histogram("desk_time_to_protection_seconds",
                               "Time from an entry's fill being recorded to the venue acknowledging every exit leg, "
                               "by how the legs are placed: pending (by the engine), native_oco, native_bracket",
                               ["strategy"], (.01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60))
ALERT_DELIVERIES = Counter("desk_alert_deliveries_total",
                           "Tries to deliver an alert to a channel, by channel kind (webhook, email) and outcome: "
                           "delivered, failed (tried again later), given_up (its last try failed)",
                           ["channel_kind", "outcome"])
# max: the newest tick of any engine, kept after that engine is gone; its age is time() - this
ENGINE_LAST_TICK = Gauge("desk_engine_last_tick_timestamp_seconds",
                         "Unix time at which an engine last finished a tick for the account", ["account"], mode="max")
ENGINE_LEASE_HELD = Gauge("desk_engine_lease_held",
                          "1 while the engine named by owner holds the account's lease, 0 while it stands by or "
                          "after it let go; gone once that engine's process has ended", ["account", "owner"],
                          mode="livesum")


# -- the scrape ----------------------------------------------------------------------------------------------------

def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # someone else's process: it runs
        return True
    return True


def forget_dead_processes(path: str) -> list[int]:
    """Drop the live gauges (open sockets, leases held) of every process that wrote into ``path`` and no longer
    runs, however it ended. Their counters and histograms stay. Returns the pids dropped."""
    dead = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = os.path.basename(name)[:-3].rsplit("_", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            dead.add(int(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return sorted(dead)


class _Collected:
    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self):
        return self.families


def render() -> bytes:
    """The scrape: in multi-process mode every process of the desk on this machine, otherwise this one."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        forget_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path)
    else:
        registry = prometheus_client.REGISTRY
    families = list(registry.collect())
    return generate_latest(_Collected(families)) + _protocol_aliases(families)


def _protocol_aliases(families: list) -> bytes:
    """``gateway_ws_slow_consumer_disconnects``: the protocol names this counter without the ``_total`` that
    prometheus_client puts on every counter, so it is written out here, once recorded, as the sum of
    ``desk_ws_slow_client_cuts_total`` over its reasons."""
    cuts = [sample.value for family in families if family.name == "desk_ws_slow_client_cuts"
            for sample in family.samples if sample.name == "desk_ws_slow_client_cuts_total"]
    if not cuts:
        return b""
    name = PROTOCOL_SLOW_CONSUMERS
    return (f"# HELP {name} Stream clients closed for being too slow or unresponsive "
            f"(desk_ws_slow_client_cuts_total, all reasons)\n# TYPE {name} counter\n"
            f"{name} {floatToGoString(sum(cuts))}\n").encode()
