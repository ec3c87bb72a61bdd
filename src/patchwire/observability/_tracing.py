"""OpenTelemetry traces: one span per run, per step and per upstream attempt, with the
attempt's context sent upstream as a W3C ``traceparent`` header.

Optional (``pip install 'patchwire[otel]'``) and off by default: it is turned on by
``PATCHWIRE_TRACING=1`` (:func:`configure_tracing_from_env`, which ``patchwire serve`` and
``worker`` call) or :func:`enable_tracing`. While it is off the call path pays one module
attribute check (``active``) per attempt and imports nothing from OpenTelemetry — the API
package may be installed by other libraries, but its no-op tracer still costs a few
microseconds per span, which is why we do not simply always call it.

Spans use the OpenTelemetry semantic conventions for HTTP clients (``http.request.method``,
``url.full`` without its query string, which may carry an API key,
``http.response.status_code``, ``http.request.resend_count``) plus ``patchwire.*``
attributes naming the action, connection, request id and run id.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from patchwire.config import TRUE_WORDS
from patchwire.observability import _metrics
from patchwire.observability._logging import run_id_var

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from patchwire.errors import CallContext


class AttemptRequest(Protocol):
    """What a span reads of ``patchwire.http.PreparedRequest`` (a protocol, so that
    observability does not depend on the HTTP package that reports to it)."""

    method: str
    url: str
    headers: dict[str, str]

__all__ = [
    "active",
    "attempt_failed",
    "attempt_finished",
    "configure_tracing_from_env",
    "disable_tracing",
    "enable_tracing",
    "observed_run",
    "start_attempt",
    "step_span",
]

log = logging.getLogger("patchwire.tracing")

#: whether spans are made; read on the hot path, so a plain module attribute
active: bool = False
_tracer: Tracer | None = None
_propagator: Any = None



def enable_tracing(provider: TracerProvider | Any | None = None) -> bool:
    """Make spans with ``provider``; without one, the globally configured provider if the
    application set one, else an SDK provider exporting over OTLP/HTTP (the standard
    ``OTEL_EXPORTER_OTLP_*`` variables say where). False, with a warning, if OpenTelemetry
    is not installed."""
    global active, _tracer, _propagator
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )
    except ImportError:
        log.warning("tracing is on but OpenTelemetry is not installed: "
                    "pip install 'patchwire[otel]'")
        return False
    if provider is None:
        provider = _default_provider(trace)
        if provider is None:
            return False
    _tracer = provider.get_tracer("patchwire")
    _propagator = TraceContextTextMapPropagator()
    active = True
    return True


def _default_provider(trace: Any) -> Any:
    current = trace.get_tracer_provider()
    if type(current).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return current  # the application configured OpenTelemetry itself
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("tracing is on but the OpenTelemetry SDK or OTLP exporter is missing: "
                    "pip install 'patchwire[otel]'")
        return None
    service = os.environ.get("OTEL_SERVICE_NAME", "patchwire")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def disable_tracing() -> None:
    global active, _tracer
    active, _tracer = False, None


def configure_tracing_from_env(environ: dict[str, str] | None = None) -> bool:
    """Turn tracing on when ``PATCHWIRE_TRACING`` is 1/true/yes/on."""
    env = os.environ if environ is None else environ
    if env.get("PATCHWIRE_TRACING", "").strip().lower() in TRUE_WORDS:
        return enable_tracing()
    return False


# -- upstream attempts (http/_client.py) ------------------------------------------------------


def _safe_url(url: str) -> str:
    # the query may hold an API key and the user info a password: neither goes in a span
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def start_attempt(req: AttemptRequest, context: CallContext | None, attempt: int) -> Span:
    """A client span for one attempt, with its ``traceparent`` put in ``req.headers``."""
    from opentelemetry.trace import SpanKind, set_span_in_context

    assert _tracer is not None
    parts = urlsplit(req.url)
    attributes: dict[str, Any] = {
        "http.request.method": req.method, "url.full": _safe_url(req.url),
        "server.address": parts.hostname or "", "patchwire.attempt": attempt,
    }
    if parts.port:
        attributes["server.port"] = parts.port
    if attempt > 1:
        attributes["http.request.resend_count"] = attempt - 1
    name = req.method
    if context is not None:
        for key, value in (("patchwire.action", context.action),
                           ("patchwire.connection", context.connection),
                           ("patchwire.request_id", context.request_id),
                           ("patchwire.run_id", context.run_id)):
            if value:
                attributes[key] = value
        if context.action:
            name = f"{req.method} {context.action}"
    span = _tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
    _propagator.inject(req.headers, context=set_span_in_context(span))
    return span


def attempt_finished(span: Span, status: int) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", str(status))
    span.end()


def attempt_failed(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
    span.end()


# -- runs and steps (flows/_runs.py) -----------------------------------------------------------


class _Flow(Protocol):
    @property
    def id(self) -> str: ...


class RunLike(Protocol):
    """What the engine's run object offers (``flows/_runs.py``'s ``ActiveRun``)."""

    id: str
    flow: Any
    attempt: int
    status: str
    trigger: str


async def observed_run(work: Awaitable[None], run: RunLike) -> None:
    """Run ``work`` (one run's execution, in its own task) with its run id in the log
    context, a span around it when tracing is on, the in-progress gauge, and the run's
    final status counted."""
    flow_id: str = run.flow.id
    run_id_var.set(run.id)  # this task's own context: nothing to reset
    in_progress = _metrics.RUNS_IN_PROGRESS.labels(flow_id)
    in_progress.inc()
    span = None
    token = None
    if active and _tracer is not None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import set_span_in_context

        span = _tracer.start_span(f"run {flow_id}", attributes={
            "patchwire.run_id": run.id, "patchwire.flow": flow_id,
            "patchwire.run_attempt": run.attempt, "patchwire.trigger": run.trigger})
        token = otel_context.attach(set_span_in_context(span))
    try:
        await work
    except BaseException as exc:
        if span is not None:
            span.set_attribute("error.type", type(exc).__qualname__)
        raise
    finally:
        in_progress.dec()
        if run.status in ("succeeded", "failed"):
            _metrics.RUNS.labels(flow_id, run.status).inc()
        if span is not None:
            from opentelemetry import context as otel_context
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("patchwire.run_status", run.status)
            if run.status == "failed":
                span.set_status(Status(StatusCode.ERROR, "run failed"))
            span.end()
            if token is not None:
                otel_context.detach(token)


def step_span(run_id: str, key: str, kind: str, status: str, started_at: float,
              finished_at: float | None) -> None:
    """A span for one checkpointed step, made when the step is checkpointed (the engine
    records a step once it is done) with the step's own start and end times."""
    _metrics.STEPS.labels(kind, status).inc()
    if not active or _tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode

    end = finished_at if finished_at is not None else time.time()
    span = _tracer.start_span(f"step {key}", start_time=int(started_at * 1e9), attributes={
        "patchwire.run_id": run_id, "patchwire.step": key, "patchwire.step_kind": kind,
        "patchwire.step_status": status})
    if status == "failed":
        span.set_status(Status(StatusCode.ERROR, "step failed"))
    span.end(end_time=int(max(end, started_at) * 1e9))
