"""Prometheus metrics: one registry for the process, the metric objects every part of
Patchwire updates, and the text exposition served at ``GET /metrics``.

Adding a metric: ``counter(name, documentation, labels)`` (or ``gauge``, ``histogram``)
returns the one metric of that name, creating it on first use, so two modules (or a module
imported twice in tests) asking for the same name share it. Keep label values bounded:
connector, action, flow, tool, status and reason names, never a connection, user, run or
request id.

The call path's cost: the per-(action, status) label children are cached here, so a call
costs two dict lookups, a counter increment and a histogram observation (~1.5 µs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase


class BreakerSnapshot(Protocol):
    """What the breaker gauge reads of ``patchwire.http.BreakerState`` (a protocol, so that
    observability does not depend on the HTTP package that reports to it)."""

    @property
    def connector(self) -> str: ...
    @property
    def state(self) -> object: ...

__all__ = [
    "AUTH_FAILURES",
    "BREAKER_STATE",
    "CALLS",
    "CALL_LATENCY",
    "CALL_RETRIES",
    "CONTENT_TYPE",
    "DELIVERIES",
    "DELIVERY_LAG",
    "RATE_LIMIT_WAITS",
    "RATE_LIMIT_WAIT_SECONDS",
    "REGISTRY",
    "RUNS",
    "RUNS_IN_PROGRESS",
    "STEPS",
    "SYNC_RECORDS",
    "TOOL_CALLS",
    "WEBHOOK_EVENTS",
    "WEBHOOK_REJECTIONS",
    "counter",
    "exposition",
    "gauge",
    "histogram",
    "observe_breakers",
    "observe_call",
    "observe_rate_limit_wait",
]

#: Patchwire's own registry (not prometheus_client's global one), so libraries registering
#: metrics of their own cannot collide with ours and tests can read exactly ours.
REGISTRY = CollectorRegistry(auto_describe=True)
# resident memory, CPU and open file descriptors of this process (Linux)
ProcessCollector(registry=REGISTRY)

#: the classic text format every Prometheus version (and most other scrapers) reads; our
#: metric names need none of the newer format's escaping
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: upstream latency buckets (seconds): most APIs answer in 20 ms-2 s; timeouts reach 30 s+
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: delivery lag buckets (seconds): from near-immediate to retried for a day
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 1800.0, 3600.0,
               21600.0, 86400.0)

_M = TypeVar("_M", bound=MetricWrapperBase)
_metrics: dict[str, MetricWrapperBase] = {}


def _get_or_create(kind: type[_M], name: str, documentation: str,
                   labels: Sequence[str], **options: object) -> _M:
    existing = _metrics.get(name)
    if existing is not None:
        if not isinstance(existing, kind) or tuple(existing._labelnames) != tuple(labels):
            raise ValueError(f"metric {name} exists as a {type(existing).__name__} with labels "
                             f"{existing._labelnames}")
        return existing
    metric = kind(name, documentation, labelnames=tuple(labels), registry=REGISTRY,
                  **options)  # type: ignore[arg-type]
    _metrics[name] = metric
    return metric


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """The counter ``name`` (Prometheus appends ``_total`` if it is missing)."""
    return _get_or_create(Counter, name, documentation, labels)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    return _get_or_create(Gauge, name, documentation, labels)


def histogram(name: str, documentation: str, labels: Sequence[str] = (),
              buckets: Iterable[float] = LATENCY_BUCKETS) -> Histogram:
    return _get_or_create(Histogram, name, documentation, labels, buckets=tuple(buckets))


def exposition() -> bytes:
    """Every metric in the Prometheus text format (``CONTENT_TYPE``)."""
    return generate_latest(REGISTRY)


# -- calls (the call path: calls/_path.py, then http/) ---------------------------------------

CALLS = counter("patchwire_calls_total",
                "Calls by connector, action and status (ok, or the error code).",
                ("connector", "action", "status"))
CALL_LATENCY = histogram("patchwire_call_latency_seconds",
                         "Call latency, retries and waits included.", ("connector", "action"))
CALL_RETRIES = counter("patchwire_call_retries_total",
                       "Attempts beyond the first, by connector and action.",
                       ("connector", "action"))
RATE_LIMIT_WAITS = counter("patchwire_rate_limit_waits_total",
                           "Times a call waited for a rate-limit slot.", ("connector",))
RATE_LIMIT_WAIT_SECONDS = counter("patchwire_rate_limit_wait_seconds_total",
                                  "Seconds calls spent waiting for rate-limit slots.",
                                  ("connector",))
BREAKER_STATE = gauge("patchwire_breaker_state",
                      "Circuit breaker per connector: 0 closed, 1 half-open, 2 open "
                      "(sampled when scraped).", ("connector",))

# -- flows (flows/_engine.py) ---------------------------------------------------------------

RUNS = counter("patchwire_runs_total",
               "Runs that ended in this process, by flow and status "
               "(succeeded, failed, cancelled).", ("flow", "status"))
RUNS_IN_PROGRESS = gauge("patchwire_runs_in_progress",
                         "Runs executing in this process now, by flow.", ("flow",))
STEPS = counter("patchwire_steps_total", "Steps checkpointed, by flow kind and status.",
                ("kind", "status"))

# -- tools (tools/_invoke.py) ---------------------------------------------------------------

TOOL_CALLS = counter("patchwire_tool_calls_total",
                     "Tool calls by tool and outcome (ok, invalid_arguments: validation "
                     "failed, unknown_tool, pending_approval, denied, error).",
                     ("tool", "outcome"))

# -- webhooks, deliveries, sync: defined here, updated by their modules ----------------------

WEBHOOK_EVENTS = counter("patchwire_webhook_events_total",
                         "Inbound webhook events accepted into the inbox, by source "
                         "(duplicates included: label duplicate=true|false).",
                         ("source", "duplicate"))
WEBHOOK_REJECTIONS = counter("patchwire_webhook_rejections_total",
                             "Inbound webhook requests refused, by source and reason "
                             "(signature, timestamp, unknown_source, too_large, malformed...).",
                             ("source", "reason"))
DELIVERIES = counter("patchwire_deliveries_total",
                     "Outbound delivery attempts by outcome (delivered, failed, dead).",
                     ("outcome",))
DELIVERY_LAG = histogram("patchwire_delivery_lag_seconds",
                         "From an event's creation to its successful delivery.",
                         buckets=LAG_BUCKETS)
SYNC_RECORDS = counter("patchwire_sync_records_total",
                       "Records written by syncs, by sync and change (created, updated, "
                       "deleted).", ("sync", "change"))

# -- the server -----------------------------------------------------------------------------

AUTH_FAILURES = counter("patchwire_auth_failures_total",
                        "Requests refused by access control, by reason: missing, invalid "
                        "(unknown, revoked or mistyped key), scope, rate_limited (API keys); "
                        "foreign_host (a Host that does not name this server: DNS "
                        "rebinding), cross_origin (another site's page).", ("reason",))

# -- hooks ----------------------------------------------------------------------------------

_call_children: dict[tuple[str, str], tuple[Counter, Histogram, Counter]] = {}


def observe_call(connector: str, action: str, status: str, latency_ms: float,
                 attempts: int) -> None:
    """Count one finished call (the call path's hook: keep it cheap)."""
    key = (action, status)
    children = _call_children.get(key)
    if children is None:
        children = _call_children[key] = (
            CALLS.labels(connector, action, status), CALL_LATENCY.labels(connector, action),
            CALL_RETRIES.labels(connector, action))
    calls, latency, retries = children
    calls.inc()
    latency.observe(latency_ms / 1000.0)
    if attempts > 1:
        retries.inc(attempts - 1)


_BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "half-open": 1.0, "open": 2.0}


def observe_breakers(states: Iterable[BreakerSnapshot]) -> None:
    """Set the breaker gauge from these snapshots (done when /metrics is scraped)."""
    for state in states:
        BREAKER_STATE.labels(state.connector).set(_BREAKER_VALUES.get(str(state.state), 0.0))


def observe_rate_limit_wait(connector: str, seconds: float) -> None:
    """Count one wait for a rate-limit slot (off the fast path: only calls that waited)."""
    RATE_LIMIT_WAITS.labels(connector).inc()
    RATE_LIMIT_WAIT_SECONDS.labels(connector).inc(max(0.0, seconds))
