"""Structured logs: a JSON (or text) formatter with the request id and run id of the work a
line belongs to, and secrets redacted.

Context lives in :mod:`contextvars`, so it follows each request's and each run's asyncio
task without being passed around: the server sets ``request_id`` per request, the flow
engine ``run_id`` per run (see :func:`log_context`).

Redaction has two layers, because a log line can come from anywhere (our code, a library,
a user's handler): every secret value the call path has decrypted is remembered
(:func:`remember_secrets`, fed by ``ResolvedConnection.build``) and replaced with ``***``
in each of its common encodings; and values under secret-looking keys (``password``,
``token``, ``authorization``...) in a line's extra fields, ``Bearer`` tokens and Patchwire
API keys are masked whatever their value.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from patchwire.observability._redact import REDACTED, Redactor

__all__ = [
    "JsonFormatter",
    "LogFormat",
    "RequestContextMiddleware",
    "TextFormatter",
    "configure_logging",
    "current_request_id",
    "current_run_id",
    "log_context",
    "redact_text",
    "remember_secrets",
    "request_id_var",
    "run_id_var",
]

LogFormat = Literal["json", "text"]


request_id_var: ContextVar[str | None] = ContextVar("patchwire_request_id", default=None)
run_id_var: ContextVar[str | None] = ContextVar("patchwire_run_id", default=None)

#: how many distinct secret values are remembered (oldest forgotten first): bounded so a
#: process resolving many connections over months does not grow without end
MAX_SECRETS = 10_000

#: extra-field names whose values are never logged
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|authorization|cookie|credential|private[_-]?key)",
    re.IGNORECASE)
#: secrets recognisable by shape alone: bearer tokens, Patchwire API keys, key=value pairs
_SECRET_SHAPES = re.compile(
    r"(?P<bearer>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|\bpwk_[A-Za-z0-9]+_[A-Za-z0-9_-]+"
    r"|(?P<kv>\b(?:password|passwd|secret|token|api[_-]?key|access_token|refresh_token|"
    r"client_secret)\b\s*[=:]\s*)[^\s,;&\"']+",
    re.IGNORECASE)

#: attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class _SecretBook:
    """The secret values seen so far and one Redactor over them, rebuilt only on change."""

    def __init__(self) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._redactor: Redactor | None = None

    def add(self, values: Iterable[str]) -> None:
        changed = False
        for value in values:
            if value in self._values:
                self._values.move_to_end(value)
                continue
            self._values[value] = None
            changed = True
        while len(self._values) > MAX_SECRETS:
            self._values.popitem(last=False)
        if changed:
            self._redactor = None  # rebuilt at the next log line, not per connection

    def __call__(self, text: str) -> str:
        if not self._values:
            return text
        if self._redactor is None:
            self._redactor = Redactor(self._values)
        return self._redactor(text)


_book = _SecretBook()


def remember_secrets(values: Iterable[Any]) -> None:
    """Make these secret values (a connection's decrypted credentials) redacted in logs."""
    _book.add(str(v) for v in values if v is not None and str(v))


def redact_text(text: str) -> str:
    """``text`` with every remembered secret and every secret-shaped value masked."""
    text = _book(text)
    return _SECRET_SHAPES.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    prefix = match.group("bearer") or match.group("kv") or ""
    return prefix + REDACTED


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))


def current_request_id() -> str | None:
    return request_id_var.get()


def current_run_id() -> str | None:
    return run_id_var.get()


@contextlib.contextmanager
def log_context(*, request_id: str | None = None, run_id: str | None = None) -> Iterator[None]:
    """Lines logged inside carry these ids (the previous ones are restored after)."""
    tokens = []
    if request_id is not None:
        tokens.append((request_id_var, request_id_var.set(request_id)))
    if run_id is not None:
        tokens.append((run_id_var, run_id_var.set(run_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, ``request_id``
    and ``run_id`` when set, ``exception`` (the traceback) and any ``extra=`` fields, all
    redacted."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        request_id, run_id = request_id_var.get(), run_id_var.get()
        if request_id is not None:
            out["request_id"] = request_id
        if run_id is not None:
            out["run_id"] = run_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = _redact_value(key, value)
        if record.exc_info:
            out["exception"] = redact_text(
                "".join(traceback.format_exception(*record.exc_info)).rstrip())
        elif record.exc_text:
            out["exception"] = redact_text(record.exc_text)
        if record.stack_info:
            out["stack"] = redact_text(record.stack_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger [request=.. run=..] message``, redacted like the JSON lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [f"{name}={value}" for name, value in
               (("request", request_id_var.get()), ("run", run_id_var.get())) if value]
        record.__dict__["ids"] = f" [{' '.join(ids)}]" if ids else ""
        try:
            return redact_text(super().format(record))
        finally:
            del record.__dict__["ids"]


def log_format_from_env(environ: dict[str, str] | None = None) -> LogFormat:
    value = (os.environ if environ is None else environ).get("PATCHWIRE_LOG_FORMAT", "text")
    value = value.strip().lower()
    if value not in ("json", "text"):
        from patchwire.errors import ConfigError

        raise ConfigError(f"PATCHWIRE_LOG_FORMAT must be json or text, got {value!r}")
    return "json" if value == "json" else "text"


#: the handler configure_logging installed, so calling it again replaces it
_installed: logging.Handler | None = None


def configure_logging(format: LogFormat | None = None, *, level: str | int | None = None,
                      stream: Any = None) -> logging.Handler:
    """Send every log line (Patchwire's, uvicorn's, libraries') to ``stream`` (stderr) in
    ``format`` (default: ``PATCHWIRE_LOG_FORMAT``, else text) at ``level`` (default:
    ``PATCHWIRE_LOG_LEVEL``, else INFO). Idempotent: a second call replaces the handler."""
    global _installed
    fmt = format or log_format_from_env()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    root.addHandler(handler)
    _installed = handler
    root.setLevel(level or os.environ.get("PATCHWIRE_LOG_LEVEL", "INFO").upper())
    # migrations announce every plugin and step at INFO on each start: only their problems
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # once enabled these echo every SQL statement with its bound parameters (SQLAlchemy at
    # INFO, aiosqlite at DEBUG) — ciphertexts, key digests, tokens being stored — so only
    # their warnings pass, whatever the root level
    for chatty in ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool", "asyncpg"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # one line per request only where logs are shipped as data, not on a person's terminal
    logging.getLogger("patchwire.access").disabled = fmt != "json"
    return handler


# -- per request (the server) -----------------------------------------------------------------

#: a caller's request id is kept only if it is plainly an identifier (it lands in logs)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_access = logging.getLogger("patchwire.access")


class RequestContextMiddleware:
    """Gives each HTTP request a request id — the caller's ``X-Request-Id`` when it is a
    plain identifier, else a new one — in the log context and the response's
    ``X-Request-Id`` header, and logs one ``patchwire.access`` line per request (method,
    path, status, duration; enabled in JSON mode by :func:`configure_logging`). Pure ASGI,
    so streamed responses are not buffered."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from patchwire.ids import new_id

        given = ""
        for key, value in scope.get("headers") or ():
            if key == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if _REQUEST_ID.match(given) else new_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers") or ())
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if _access.isEnabledFor(logging.INFO):
                client = scope.get("client")
                _access.info("%s %s %s", scope.get("method"), scope.get("path"), status,
                             extra={"method": scope.get("method"), "path": scope.get("path"),
                                    "status": status, "client": client[0] if client else None,
                                    "duration_ms": round((time.perf_counter() - started) * 1000,
                                                         2)})
            request_id_var.reset(token)
