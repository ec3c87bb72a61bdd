"""Inbound webhooks over HTTP: the receiver (``/hooks/{source}``) and the management API
(``/api/v1/webhook-sources``, ``/api/v1/webhooks/inbox``, ``/api/v1/webhooks/rejections``).

The receiver is a plain ASGI endpoint rather than a FastAPI route: it must see the raw
bytes before any parsing (signatures are over them), enforce the size limit while reading,
and it is the server's hottest path (thousands of requests a second), where FastAPI's
dependency and validation layers would cost more than the rest of the work together.

What a request goes through: unknown or disabled source → 404; ``Content-Length`` over
the source's limit → 413 before reading, and the body is counted while read (chunked
bodies) → 413; a body not all there within ``webhook_body_timeout`` (10 s) → 408 (both
close the connection: the rest of the body is never read); handshake GETs
(``hub.challenge``) are answered; the signature is verified (a failure → the scheme's
4xx, recorded in ``webhook_rejections``); a Slack
``url_verification`` is answered once verified; the body is parsed (JSON, or a form);
the event is committed to the inbox and only then acknowledged — 202 for a new event, 200
for a duplicate (same source and event id or, where the scheme signs no event id, the same
signed content within the replay window), which is dropped. Rejections are recorded with
the values of headers that could carry credentials or signatures replaced, and every
secret of the source scrubbed from the header summary and the body excerpt.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from starlette.datastructures import Headers

from patchwire.access import requires
from patchwire.errors import PatchwireError, StoreError, WebhookRejected
from patchwire.expressions import ExpressionError
from patchwire.http import Redactor, excerpt
from patchwire.ids import new_id
from patchwire.observability import WEBHOOK_EVENTS, WEBHOOK_REJECTIONS
from patchwire.webhooks import (
    DEFAULT_GRACE_S,
    DEFAULT_MAX_BODY_BYTES,
    MAX_GRACE_S,
    MAX_TOLERANCE_S,
    Inbox,
    InboxEvent,
    LoadedSource,
    SchemeSettings,
    SourceCache,
    Verified,
    WebhookSourceExists,
    WebhookSources,
    handshake,
    verify,
)

__all__ = ["WebhookReceiver", "webhooks_router"]

log = logging.getLogger("patchwire.webhooks")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PROBLEM = b"application/problem+json"
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_CLOSE = (b"connection", b"close")
#: a Content-Length longer than this is refused unread (int() of thousands of digits fails)
_MAX_LENGTH_DIGITS = 18
#: body_bytes is a 32-bit column (PostgreSQL refuses more): a claimed length beyond is cut
_MAX_STORED_SIZE = 2**31 - 1
_TITLES = {413: "Payload too large", 408: "Request timeout"}
#: header names containing these are never stored with a value: signatures, credentials
_SECRET_WORDS = ("signature", "hmac", "token", "secret", "password", "auth", "cookie",
                 "api-key", "apikey", "session")
#: transport headers, not worth storing with an event
_TRANSPORT = frozenset({"host", "content-length", "connection", "accept-encoding",
                        "transfer-encoding", "expect", "keep-alive", "te", "upgrade"})
_MAX_STORED_HEADERS = 40
_MAX_HEADER_VALUE = 1000
_EXCERPT_CHARS = 512
#: inbox column widths (PostgreSQL enforces them)
_MAX_EVENT_ID = 300
_MAX_TYPE = 200


def _secret_header(name: str, scheme: SchemeSettings) -> bool:
    return any(w in name for w in _SECRET_WORDS) or (
        scheme.header is not None and name == scheme.header.lower())


@functools.lru_cache(maxsize=4096)
def _kept_name(name: bytes, generic_header: str | None) -> str | None:
    """The header's name if an event keeps it (ASGI gives names lowercased), else None;
    cached: the same few names arrive with every request."""
    text = name.decode("latin-1")
    if text in _TRANSPORT or any(w in text for w in _SECRET_WORDS) or (
            generic_header is not None and text == generic_header.lower()):
        return None
    return text


def _stored_headers(raw: list[tuple[bytes, bytes]], scheme: SchemeSettings) -> dict[str, str]:
    """The headers kept with an event: no transport, signature or credential ones."""
    kept: dict[str, str] = {}
    for key, value in raw:
        name = _kept_name(key, scheme.header)
        if name is None or name in kept:
            continue
        kept[name] = value.decode("latin-1")[:_MAX_HEADER_VALUE]
        if len(kept) >= _MAX_STORED_HEADERS:
            break
    return kept


def _header_summary(raw: list[tuple[bytes, bytes]], scheme: SchemeSettings,
                    redact: Redactor) -> dict[str, str]:
    """Every header of a rejected request, with values that could hold secret material
    replaced by their length (a signature's length still helps debugging)."""
    summary: dict[str, str] = {}
    for key, value in raw[:_MAX_STORED_HEADERS]:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        if _secret_header(name, scheme):
            summary[name] = f"[redacted, {len(text)} chars]"
        else:
            summary[name] = redact(text)[:200]
    return summary


def _text(value: Any, width: int) -> str | None:
    """An id or type as stored: text, numbers as text; too long ones hashed (ids must
    stay unique) or cut (types)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str) or not value:
        return None
    if len(value) <= width:
        return value
    if width == _MAX_EVENT_ID:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value[:width]


def default_event_type(scheme: SchemeSettings, headers: Headers, payload: Any) -> Any:
    """The event type when the source configures no expression: where each vendor puts it."""
    if scheme.scheme == "github":
        return headers.get("x-github-event")
    if scheme.scheme == "shopify":
        return headers.get("x-shopify-topic")
    if not isinstance(payload, dict):
        return None
    kind = payload.get("type")
    if scheme.scheme == "slack" and kind == "event_callback":
        inner = payload.get("event")
        if isinstance(inner, dict) and isinstance(inner.get("type"), str):
            return inner["type"]
    return kind


class _BadBody(Exception):
    def __init__(self, reason: str, status: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def parse_payload(body: bytes, content_type: str) -> tuple[Any, str | None]:
    """The event payload and its JSON text as stored (the body itself for JSON bodies,
    so it is never serialised twice). Form bodies become an object of fields (a repeated
    field a list); a form whose only field is ``payload`` holding JSON (Slack's
    interactivity) becomes that JSON."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _BadBody("invalid_form", 400, "the form body is not UTF-8") from None
        form: dict[str, Any] = {}
        for key, value in pairs:
            if key in form:
                form[key] = [*form[key], value] if isinstance(form[key], list) else [
                    form[key], value]
            else:
                form[key] = value
        payload: Any = form
        if list(form) == ["payload"] and isinstance(form["payload"], str):
            with contextlib.suppress(orjson.JSONDecodeError):
                payload = orjson.loads(form["payload"])
        return payload, orjson.dumps(payload).decode()
    if not body.strip():
        return None, None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if media and media != "application/json" and not media.endswith("+json"):
            raise _BadBody("unsupported_media_type", 415,
                           f"{media} bodies are not accepted: send JSON or a form") from None
        raise _BadBody("invalid_json", 400, f"the body is not valid JSON: {exc}") from None
    return payload, body.decode("utf-8")  # orjson accepted it: valid UTF-8


async def _respond(send: Send, status: int, body: bytes, content_type: bytes, *,
                   close: bool = False) -> None:
    # nosniff on every answer: a handshake echoes a sender's challenge, which a browser
    # must never take for HTML or script whatever it contains
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               _NOSNIFF]
    if close:  # the body was not read to its end: what follows on the connection is not
        headers.append(_CLOSE)  # a request, so the server closes it after this answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _problem_body(status: int, title: str, detail: str, code: str, **extra: Any) -> bytes:
    return orjson.dumps({**{k: v for k, v in extra.items() if v is not None},
                         "type": f"https://patchwire.dev/errors/{code}", "title": title,
                         "status": status, "detail": detail})


#: the label children of the counters, cached (a lookup a request instead of three)
_counted: dict[tuple[str, str, str], Any] = {}


def _count(kind: str, source: str, label: str) -> None:
    """Count an accepted (``kind`` "event", ``label`` duplicate true|false) or refused
    (``label`` the reason) request. Unknown source names come from anyone on the network:
    they are counted under one label, never their own."""
    key = (kind, source, label)
    child = _counted.get(key)
    if child is None:
        metric = WEBHOOK_EVENTS if kind == "event" else WEBHOOK_REJECTIONS
        child = _counted[key] = metric.labels(source, label)
    child.inc()


class WebhookReceiver:
    """``/hooks/{source}``: an ASGI endpoint over the source cache and the inbox."""

    def __init__(self, cache: SourceCache, inbox: Inbox,
                 clock: Callable[[], float] = time.time, *,
                 body_timeout: float | None = None) -> None:
        self.cache = cache
        self.inbox = inbox
        self.clock = clock
        #: seconds a sender has to deliver the whole body (not per chunk: a trickle of a
        #: byte a second would pass any idle timeout)
        self.body_timeout = (inbox.settings.webhook_body_timeout if body_timeout is None
                             else body_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name: str = scope["path_params"]["source"]
        try:
            source = await self.cache.get(name)
        except PatchwireError as exc:
            log.warning("cannot load webhook sources: %s", exc)
            await self._problem(send, 503, "Store unavailable",
                                "the webhook sources cannot be read now; try again later",
                                "store_unavailable")
            return
        if source is None or not source.enabled:
            _count("rejection", "(unknown)" if source is None else name, "unknown_source")
            await self._problem(send, 404, "Unknown webhook source",
                                f"no enabled webhook source named {name!r}",
                                "unknown_webhook_source")
            return
        headers = Headers(scope=scope)
        if scope["method"] == "GET":
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            answer = handshake(source.scheme, "GET", headers, query, b"")
            if answer is None:
                await self._problem(send, 405, "Method not allowed",
                                    "events are delivered with POST; GET answers "
                                    "hub.challenge handshakes only", "method_not_allowed")
                return
            await _respond(send, answer[0], answer[2], answer[1].encode())
            return
        body = await self._read(scope, receive, send, source, headers)
        if body is not None:
            await self._event(scope, send, source, headers, body)

    async def _read(self, scope: Scope, receive: Receive, send: Send, source: LoadedSource,
                    headers: Headers) -> bytes | None:
        """The body, or None when it was refused (too large, too slow) or the client
        left."""
        limit = source.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and (
                len(declared) > _MAX_LENGTH_DIGITS or int(declared) > limit):
            await self._reject(scope, send, source, "body_too_large", 413,
                               f"the body is {declared[:_MAX_LENGTH_DIGITS]}"
                               f"{'...' if len(declared) > _MAX_LENGTH_DIGITS else ''} "
                               f"bytes; this source accepts at most {limit}", b"",
                               int(declared[:_MAX_LENGTH_DIGITS]), close=True)
            return None
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:  # chunked, or a Content-Length that understated it
                        break
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except TimeoutError:
            await self._reject(scope, send, source, "body_timeout", 408,
                               f"the body did not arrive within {self.body_timeout:g} s "
                               f"({size} bytes came)", b"".join(chunks), size, close=True)
            return None
        await self._reject(scope, send, source, "body_too_large", 413,
                           f"the body exceeds this source's limit of {limit} bytes",
                           b"".join(chunks), size, close=True)
        return None

    async def _event(self, scope: Scope, send: Send, source: LoadedSource, headers: Headers,
                     body: bytes) -> None:
        now = self.clock()
        try:
            verified: Verified = verify(source.scheme, source.active_secrets(now), headers,
                                        body, now=now)
        except WebhookRejected as exc:
            await self._reject(scope, send, source, exc.reason, exc.status, str(exc), body,
                               len(body))
            return
        answer = handshake(source.scheme, "POST", headers, {}, body)
        if answer is not None:  # Slack's url_verification, answered now that it is signed
            await _respond(send, answer[0], answer[2], answer[1].encode())
            return
        try:
            payload, stored = parse_payload(body, headers.get("content-type", ""))
        except _BadBody as exc:
            await self._reject(scope, send, source, exc.reason, exc.status, str(exc), body,
                               len(body))
            return
        event_id: Any = verified.event_id
        event_type: Any = None
        bindings: dict[str, Any] | None = None
        try:
            if source.event_id is not None:
                bindings = {"headers": dict(headers.items())}
                event_id = source.event_id.evaluate(payload, bindings)
            if source.event_type is not None:
                bindings = bindings or {"headers": dict(headers.items())}
                event_type = source.event_type.evaluate(payload, bindings)
            else:
                event_type = default_event_type(source.scheme, headers, payload)
        except ExpressionError as exc:
            # a verified event is never lost to a source's expression: it is kept without
            # what the expression should have given (no dedupe key, no type)
            log.warning("webhook source %s: an expression failed on an event: %s",
                        source.name, exc)
        event = InboxEvent(id=new_id(), source=source.name,
                           event_id=_text(event_id, _MAX_EVENT_ID),
                           type=_text(event_type, _MAX_TYPE), payload=payload, received_at=now)
        kept = _stored_headers(scope["headers"], source.scheme)
        try:
            inserted = await self.inbox.submit(event, stored, kept, orjson.dumps(kept).decode(),
                                               content_digest=verified.content_digest)
        except StoreError as exc:
            log.warning("webhook event from %s not committed: %s", source.name, exc)
            # a 5xx: the sender keeps the event and retries it
            await self._problem(send, 503, "Store unavailable",
                                "the event could not be stored; retry later",
                                "store_unavailable")
            return
        _count("event", source.name, "false" if inserted else "true")
        if inserted:
            await _respond(send, 202, orjson.dumps({"id": event.id, "status": "accepted"}),
                           b"application/json")
        else:
            await _respond(send, 200, orjson.dumps({"status": "duplicate",
                                                    "event_id": event.event_id}),
                           b"application/json")

    async def _reject(self, scope: Scope, send: Send, source: LoadedSource, reason: str,
                      status: int, detail: str, body: bytes, size: int, *,
                      close: bool = False) -> None:
        """Record the rejection (best effort: the answer goes out either way), then
        answer with a problem whose ``type`` ends in the reason."""
        redact = Redactor([s.value for s in source.secrets])
        row = (new_id(), source.name, reason[:64], status, redact(detail)[:2000],
               orjson.dumps(_header_summary(scope["headers"], source.scheme, redact)).decode(),
               excerpt(body, redact, _EXCERPT_CHARS) if body else None,
               min(size, _MAX_STORED_SIZE), self.clock())
        _count("rejection", source.name, reason)
        try:
            await self.inbox.writer.reject(row)
        except PatchwireError as exc:
            log.warning("cannot record a rejected webhook from %s: %s", source.name, exc)
        title = _TITLES.get(status, "Webhook rejected")
        await self._problem(send, status, title, redact(detail), reason, close=close,
                            source=source.name, reason=reason)

    @staticmethod
    async def _problem(send: Send, status: int, title: str, detail: str, code: str, *,
                       close: bool = False, **extra: Any) -> None:
        await _respond(send, status, _problem_body(status, title, detail, code, **extra),
                       PROBLEM, close=close)


# -- the management API ---------------------------------------------------------------------


class SourceCreate(BaseModel):
    name: str = Field(description="the URL path segment: /hooks/{name}")
    scheme: SchemeSettings
    secrets: list[str] = Field(min_length=1, description="signing secrets (never returned)")
    event_id: str | None = Field(None, description="JSONata over the payload ($headers "
                                                   "bound): the dedupe key")
    event_type: str | None = Field(None, description="JSONata over the payload: the type")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1)
    enabled: bool = True


class SourceUpdate(BaseModel):
    enabled: bool | None = None
    tolerance_s: int | None = Field(None, ge=1, le=MAX_TOLERANCE_S)
    event_id: str | None = Field(None, description="'' clears it")
    event_type: str | None = Field(None, description="'' clears it")
    max_body_bytes: int | None = Field(None, ge=1)


class SecretRotation(BaseModel):
    secret: str = Field(min_length=1)
    grace_s: float = Field(DEFAULT_GRACE_S, ge=0, le=MAX_GRACE_S, allow_inf_nan=False,
                           description="how long the older secrets stay valid (at most a "
                                       "year)")


InboxStatus = Literal["pending", "processed", "failed"]


def webhooks_router(sources: WebhookSources, cache: SourceCache, inbox: Inbox) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["webhooks"])

    @router.get("/webhook-sources", dependencies=[requires("read")])
    async def list_sources() -> list[dict[str, Any]]:
        return [s.to_dict() for s in await sources.list()]

    @router.post("/webhook-sources",
                 dependencies=[requires("admin")], status_code=201, response_model=None)
    async def add_source(body: SourceCreate) -> dict[str, Any] | Response:
        try:
            added = await sources.add(body.name, body.scheme, body.secrets,
                                      event_id=body.event_id, event_type=body.event_type,
                                      max_body_bytes=body.max_body_bytes, enabled=body.enabled)
        except WebhookSourceExists as exc:
            return Response(_problem_body(409, "WebhookSourceExists", str(exc), exc.code),
                            status_code=409, media_type=PROBLEM.decode())
        cache.invalidate()
        return added.to_dict()

    @router.get("/webhook-sources/{name}", dependencies=[requires("read")])
    async def get_source(name: str) -> dict[str, Any]:
        return (await sources.get(name)).to_dict()

    @router.patch("/webhook-sources/{name}", dependencies=[requires("admin")])
    async def update_source(name: str, body: SourceUpdate) -> dict[str, Any]:
        scheme = None
        if body.tolerance_s is not None:
            current = await sources.get(name)
            scheme = SchemeSettings.model_validate(
                {**current.scheme.model_dump(exclude_defaults=True),
                 "tolerance_s": body.tolerance_s})
        try:
            updated = await sources.update(name, enabled=body.enabled, scheme=scheme,
                                           event_id=body.event_id, event_type=body.event_type,
                                           max_body_bytes=body.max_body_bytes)
        finally:
            cache.invalidate()
        return updated.to_dict()

    @router.post("/webhook-sources/{name}/rotate", dependencies=[requires("admin")])
    async def rotate_secret(name: str, body: SecretRotation) -> dict[str, Any]:
        rotated = await sources.rotate(name, body.secret, grace_s=body.grace_s)
        cache.invalidate()
        return rotated.to_dict()

    @router.delete("/webhook-sources/{name}", dependencies=[requires("admin")], status_code=204)
    async def remove_source(name: str) -> Response:
        await sources.remove(name)
        cache.invalidate()
        return Response(status_code=204)

    @router.get("/webhooks/inbox", dependencies=[requires("read")])
    async def list_inbox(source: str | None = None, status: InboxStatus | None = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                         ) -> list[dict[str, Any]]:
        return [e.to_dict() for e in await inbox.list_events(source=source, status=status,
                                                             limit=limit)]

    @router.get("/webhooks/inbox/{event_id}", dependencies=[requires("read")])
    async def get_inbox_event(event_id: str) -> dict[str, Any]:
        return (await inbox.get_event(event_id)).to_dict(payload=True)

    @router.post("/webhooks/inbox/{event_id}/replay", dependencies=[requires("run")])
    async def replay_event(event_id: str) -> dict[str, Any]:
        return (await inbox.replay(event_id)).to_dict()

    @router.get("/webhooks/rejections", dependencies=[requires("read")])
    async def list_rejections(source: str | None = None,
                              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                              ) -> list[dict[str, Any]]:
        return [r.to_dict() for r in await inbox.list_rejections(source=source, limit=limit)]

    return router
