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
# each order event as the outbox records it (events.record_order), counted once its transaction commits
ORDER_EVENTS = Counter("gateway_order_events_total",
                       "Order events, by platform and event type: created, modified, cancelled, rejected, filled, "
                       "partially_filled, expired, bracket_created, bracket_modified", ["platform", "event_type"])
OCO_DOUBLE_EXITS = Counter("gateway_oco_double_exit_total",
                           "A second order of an OCO group filled after the first (OCO_DOUBLE_EXIT raised)",
                           ["platform"])
CRITICAL_DROPPED = Counter("gateway_critical_notifications_dropped_total",
                           "Critical alerts (POSITION_UNPROTECTED, OCO_DOUBLE_EXIT, raised or escalated) committed "
                           "while no socket of their account was open to hear them: no /v1/ws client, desk or risk "
                           "page (the alert stays on the risk view and is replayed to a /v1/ws client that connects)",
                           ["platform"])
# the engine's link to its venue (engine.BrokerLink: BROKER_DISCONNECTED / BROKER_RECONNECTED, PROTOCOL §7.7)
BROKER_DISCONNECTIONS = Counter("gateway_broker_disconnections_total",
                                "The venue stopped answering the engine (BROKER_DISCONNECTED)", ["platform"])
BROKER_RECONNECT_ATTEMPTS = Counter("gateway_broker_reconnect_attempts_total",
                                    "Polls of a venue that had stopped answering", ["platform"])
BROKER_RECONNECTIONS = Counter("gateway_broker_reconnections_total",
                               "The venue answered again (BROKER_RECONNECTED)", ["platform"])
BROKER_RECONNECT_FAILURES = Counter("gateway_broker_reconnect_failures_total",
                                    "Polls of a venue that had stopped answering that failed again (the engine never "
                                    "gives up: it polls again at its next tick)", ["platform"])
RATE_LIMIT_EVENTS = Counter("gateway_rate_limit_events_total",
                            "A venue's rate limit: hit (the venue refused a request for it: HTTP 429 or 418, Kraken's "
                            "rate errors), warning (the desk held a request back to stay within the venue's budget)",
                            ["platform", "event_type"])
BACKTEST_COMPLETIONS = Counter("gateway_backtest_completions_total",
                               "Replays ended (Tektii mode): the desk has no replay venue, so it never counts one",
                               ["platform"])
# the protocol's unlabelled gateway_circuit_breaker_resets_total is this counter's sum, added by render()
BREAKER_RESETS = Counter("desk_circuit_breaker_resets_total", "Successful circuit breaker resets, by account",
                         ["account"])
PROTOCOL_BREAKER_RESETS = "gateway_circuit_breaker_resets_total"

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
APPROVALS = Counter("desk_approvals_total",
                    "Four-eyes requests, by kind (RESUME_TRADING, RAISE_LIMIT, LARGE_ORDER) and outcome: requested, "
                    "approved, rejected, cancelled (withdrawn by the person asking), expired, failed (approved but "
                    "the change was refused when made), self_refused (the person asking tried to decide it)",
                    ["kind", "outcome"])
LOGINS = Counter("desk_logins_total",
                 "Steps of logging in to the desk, by outcome: password_ok, password_failed, otp_ok (an authenticator "
                 "code let the person in), otp_failed (a wrong code), otp_throttled (a code given too soon after wrong "
                 "ones, not checked), recovery_used (a recovery code let the person in), otp_setup (an authenticator "
                 "set up), locked_out (refused: the name or address is locked)", ["outcome"])
# max: the newest tick of any engine, kept after that engine is gone; its age is time() - this
ENGINE_LAST_TICK = Gauge("desk_engine_last_tick_timestamp_seconds",
                         "Unix time at which an engine last finished a tick for the account", ["account"], mode="max")
# livesum: the sockets the outbox relays of running web processes feed, by the account they follow (a risk view of
# every account counts for each); a critical alert with none is counted as dropped (CRITICAL_DROPPED)
SOCKET_LISTENERS = Gauge("desk_socket_listeners", "Open sockets following the account: /v1/ws clients, desk and "
                         "risk pages", ["account_id"], mode="livesum")
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
    families = list(_registry().collect())
    return generate_latest(_Collected(families)) + _protocol_aliases(families) + _protocol_declarations(families)


def _registry():
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return prometheus_client.REGISTRY
    forget_dead_processes(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path)
    return registry


def live_total(gauge: Gauge, **labels: str) -> float:
    """A live gauge's value summed over every running process of the desk on this machine (one scrape's reading of
    it), for the samples carrying ``labels``."""
    name = gauge.metric.describe()[0].name
    return sum(sample.value for family in _registry().collect() if family.name == name
               for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


# the protocol's unlabelled counters, kept by the desk under a labelled name of its own (every counter here has
# labels: see the module's docstring): protocol name -> (the desk's family, its help)
_ALIASES = {
    PROTOCOL_SLOW_CONSUMERS: ("desk_ws_slow_client_cuts", "Stream clients closed for being too slow or unresponsive "
                                                          "(desk_ws_slow_client_cuts_total, all reasons)"),
    PROTOCOL_BREAKER_RESETS: ("desk_circuit_breaker_resets", "Successful circuit breaker resets "
                                                             "(desk_circuit_breaker_resets_total, all accounts)"),
}


def _protocol_aliases(families: list) -> bytes:
    """Each of ``_ALIASES``, once recorded, as the sum of the desk's counter over its labels: the protocol names
    ``gateway_ws_slow_consumer_disconnects`` without the ``_total`` prometheus_client puts on every counter, and
    ``gateway_circuit_breaker_resets_total`` with no labels."""
    text = ""
    for name, (family_name, help_text) in _ALIASES.items():
        values = [sample.value for family in families if family.name == family_name
                  for sample in family.samples if sample.name == f"{family_name}_total"]
        if values:
            text += f"# HELP {name} {help_text}\n# TYPE {name} counter\n{name} {floatToGoString(sum(values))}\n"
    return text.encode()


# every metric PROTOCOL.md §12.2 names, with its type, as the scrape writes it
PROTOCOL_METRICS = {
    "gateway_orders_submitted_total": "counter", "gateway_order_submit_duration_seconds": "histogram",
    "gateway_order_events_total": "counter", "gateway_oco_double_exit_total": "counter",
    "gateway_critical_notifications_dropped_total": "counter", "gateway_ws_connections_active": "gauge",
    PROTOCOL_SLOW_CONSUMERS: "counter", "gateway_broker_disconnections_total": "counter",
    "gateway_broker_reconnect_attempts_total": "counter", "gateway_broker_reconnections_total": "counter",
    "gateway_broker_reconnect_failures_total": "counter", "gateway_rate_limit_events_total": "counter",
    PROTOCOL_BREAKER_RESETS: "counter", "gateway_backtest_completions_total": "counter",
}


def _protocol_declarations(families: list) -> bytes:
    """The protocol's metrics that no process has recorded yet, declared (HELP and TYPE, no sample): every name of
    §12.2 is on every scrape, and its series appear once recorded, as the protocol says. Without the directory
    (one process) prometheus_client declares its own already."""
    written = {family.name + ("_total" if family.type == "counter" else "") for family in families}
    written |= {name for name, (family_name, _) in _ALIASES.items()
                if any(family.name == family_name and family.samples for family in families)}
    helps = {family.name + ("_total" if family.type == "counter" else ""): family.documentation
             for metric in _PROTOCOL_OBJECTS for family in metric.metric.describe()}
    helps.update({name: help_text for name, (_, help_text) in _ALIASES.items()})
    return "".join(f"# HELP {name} {helps.get(name, name)}\n# TYPE {name} {kind}\n"
                   for name, kind in PROTOCOL_METRICS.items() if name not in written).encode()


_PROTOCOL_OBJECTS = (ORDERS_SUBMITTED, ORDER_SUBMIT_SECONDS, ORDER_EVENTS, OCO_DOUBLE_EXITS, CRITICAL_DROPPED,
                     WS_CONNECTIONS, BROKER_DISCONNECTIONS, BROKER_RECONNECT_ATTEMPTS, BROKER_RECONNECTIONS,
                     BROKER_RECONNECT_FAILURES, RATE_LIMIT_EVENTS, BACKTEST_COMPLETIONS)
