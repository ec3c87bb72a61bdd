"""Observability: Prometheus metrics, OpenTelemetry traces and structured logs.

- ``patchwire.observability.metrics``: the registry and metric objects (``CALLS``,
  ``WEBHOOK_EVENTS``, ``DELIVERY_LAG``...) and ``counter()/gauge()/histogram()`` to add
  more; ``GET /metrics`` serves them.
- ``enable_tracing()`` / ``PATCHWIRE_TRACING=1``: spans per run, step and upstream attempt
  (optional extra ``patchwire[otel]``).
- ``configure_logging()`` / ``PATCHWIRE_LOG_FORMAT=json|text``: log lines with the request
  id and run id (``log_context``), secrets redacted.
- ``Redactor`` / ``excerpt``: secret values masked in every encoding (raw, URL, base64,
  JSON-escaped) before any text leaves Patchwire; the call path, webhooks and logs use it.
"""

from __future__ import annotations

from patchwire.observability import _metrics as metrics
from patchwire.observability import _tracing as tracing
from patchwire.observability._logging import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
    current_request_id,
    current_run_id,
    log_context,
    redact_text,
    remember_secrets,
)
from patchwire.observability._tracing import (
    configure_tracing_from_env,
    disable_tracing,
    enable_tracing,
)

from ._logging import RequestContextMiddleware
from ._metrics import (
    AUTH_FAILURES,
    CONTENT_TYPE,
    RUNS,
    TOOL_CALLS,
    WEBHOOK_EVENTS,
    WEBHOOK_REJECTIONS,
    exposition,
    observe_breakers,
    observe_call,
    observe_rate_limit_wait,
)
from ._redact import REDACTED, Redactor, excerpt

__all__ = [
    "AUTH_FAILURES",
    "CONTENT_TYPE",
    "REDACTED",
    "RUNS",
    "TOOL_CALLS",
    "WEBHOOK_EVENTS",
    "WEBHOOK_REJECTIONS",
    "JsonFormatter",
    "Redactor",
    "RequestContextMiddleware",
    "TextFormatter",
    "configure_logging",
    "configure_tracing_from_env",
    "current_request_id",
    "current_run_id",
    "disable_tracing",
    "enable_tracing",
    "excerpt",
    "exposition",
    "log_context",
    "metrics",
    "observe_breakers",
    "observe_call",
    "observe_rate_limit_wait",
    "redact_text",
    "remember_secrets",
    "tracing",
]
