"""Signed webhooks the sandbox APIs send for their own events.

Each API signs like the vendor it imitates, so a receiver configured for that vendor's
scheme verifies it unchanged:

========= ============================== ============================================
API       scheme (``patchwire.webhooks``) events
========= ============================== ============================================
shop      ``shopify`` (+ X-Shopify-Topic) order.created, order.updated, order.refunded
payments  ``stripe``                      charge.succeeded, charge.refunded
helpdesk  ``github`` (+ X-GitHub-Event)   ticket.created, ticket.updated, comment.created
calendar  ``standard``                    appointment.booked, appointment.cancelled
========= ============================== ============================================

Every body is ``{"id": "evt_...", "type": "...", "created": <Unix s>, "data": {...}}`` with
``data`` the API object as it was when the event happened. Nothing is sent until a URL is
set (``Sandbox(webhook_url=...)``, :meth:`WebhookSender.set_url`, ``PUT /_sandbox/webhooks``
or ``patchwire sandbox --webhook-url``).

Delivery never slows the API: ``emit`` serialises the event and puts it on the API's
bounded queue (full: the event is dropped and counted); one worker per API posts them in
order, retrying connection errors, 429 and 5xx a few times within about a second, signing
each attempt afresh (a new timestamp, the same event id, as real senders do).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from patchwire.errors import CallError
from patchwire.http import HttpCore, Limits, PreparedRequest
from patchwire.webhooks import SchemeSettings, sign

__all__ = [
    "NO_EVENTS",
    "SANDBOX_WEBHOOK_SCHEMES",
    "SANDBOX_WEBHOOK_SECRETS",
    "ApiEvents",
    "WebhookCounters",
    "WebhookSender",
    "checked_webhook_url",
    "merged_webhook_secrets",
]

log = logging.getLogger(__name__)

SANDBOX_WEBHOOK_SCHEMES: dict[str, SchemeSettings] = {
    "shop": SchemeSettings(scheme="shopify"),
    "payments": SchemeSettings(scheme="stripe"),
    "helpdesk": SchemeSettings(scheme="github"),
    "calendar": SchemeSettings(scheme="standard"),
}
"""How each sandbox API signs its webhooks: configure a receiver's source with these."""

SANDBOX_WEBHOOK_SECRETS: dict[str, str] = {
    "shop": "shpss_sandbox_shop_webhook_secret",
    # Stripe's endpoint secrets also look like whsec_...; Stripe uses the text as the key.
    "payments": "whsec_sandbox_payments_webhook_secret",
    "helpdesk": "sandbox-helpdesk-webhook-secret",
    # Standard Webhooks: whsec_ + base64 of the 32-byte key b"patchwire-sandbox-calendar-hook!"
    "calendar": "whsec_cGF0Y2h3aXJlLXNhbmRib3gtY2FsZW5kYXItaG9vayE=",
}
"""Webhook signing secrets unless overridden; published like ``SANDBOX_CREDENTIALS``:
they protect nothing outside a developer's machine."""

DEFAULT_QUEUE_SIZE = 1_000
RETRY_DELAYS_S = (0.05, 0.2, 0.5)
"""Pauses before the retries: a blip is ridden out, a dead receiver costs under a second."""
ATTEMPT_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 1.0
"""How long stopping the sandbox waits for queued events (the demo's last refund...)."""

_USER_AGENTS = {
    "shop": "Shopify-Captain-Hook",
    "payments": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    "helpdesk": "GitHub-Hookshot/patchwire-sandbox",
    "calendar": "patchwire-sandbox-webhooks/1 (Standard Webhooks)",
}
_SHOPIFY_TOPICS = {
    "order.created": "orders/create",
    "order.updated": "orders/updated",
    "order.refunded": "refunds/create",
}


def merged_webhook_secrets(overrides: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(SANDBOX_WEBHOOK_SECRETS)
    for api, secret in (overrides or {}).items():
        if api not in merged:
            raise ValueError(f"unknown sandbox API {api!r}; expected one of {sorted(merged)}")
        if not secret:
            raise ValueError(f"the webhook secret for {api} must not be empty")
        merged[api] = secret
    return merged


def checked_webhook_url(url: str | None) -> str | None:
    """``url`` normalised; ValueError unless it is an absolute http(s) URL (or None)."""
    if url is None:
        return None
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("the webhook URL must be an absolute http(s) URL")
    return str(parsed)


@dataclass
class WebhookCounters:
    """What the sandbox did with its events (read in tests and ``GET /_sandbox/stats``)."""

    emitted: int = 0
    """Events queued for delivery (a URL was set)."""
    sent: int = 0
    """Events the receiver acknowledged with a 2xx."""
    failed: int = 0
    """Events given up on: a 4xx, or still failing after the retries."""
    dropped: int = 0
    """Events not queued because the API's queue was full (or the URL was unset meanwhile)."""
    retries: int = 0
    """Extra attempts made after connection errors, 429 or 5xx."""

    def clear(self) -> None:
        self.emitted = self.sent = self.failed = self.dropped = self.retries = 0

    def to_json(self) -> dict[str, int]:
        return {
            "emitted": self.emitted,
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "retries": self.retries,
        }


@dataclass(frozen=True, slots=True)
class _Pending:
    event_id: str
    type: str
    body: bytes


class ApiEvents:
    """What one API calls to announce its own events; a no-op when nobody listens."""

    __slots__ = ("_sender", "api")

    def __init__(self, sender: WebhookSender | None, api: str) -> None:
        self._sender = sender
        self.api = api

    @property
    def enabled(self) -> bool:
        return self._sender is not None and self._sender.url is not None

    def emit(self, type: str, data: Mapping[str, Any]) -> None:
        """Queues ``type`` with a snapshot of ``data``; returns at once."""
        if self._sender is not None:
            self._sender.emit(self.api, type, data)


NO_EVENTS = ApiEvents(None, "")
"""The events hook of an API not wired to a sender (constructed on its own in a test)."""


class WebhookSender:
    """Queues, signs and posts the sandbox APIs' events to one URL."""

    def __init__(
        self,
        url: str | None = None,
        secrets: Mapping[str, str] | None = None,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        retry_delays: tuple[float, ...] = RETRY_DELAYS_S,
        attempt_timeout_s: float = ATTEMPT_TIMEOUT_S,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._url = checked_webhook_url(url)
        self.secrets = merged_webhook_secrets(secrets)
        self.counters = WebhookCounters()
        self.queue_size = queue_size
        self.retry_delays = retry_delays
        self.attempt_timeout_s = attempt_timeout_s
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[str, asyncio.Queue[_Pending]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._core: HttpCore | None = None
        self._limits = Limits(aiohttp.ClientTimeout(total=attempt_timeout_s))

    @property
    def url(self) -> str | None:
        return self._url

    def set_url(self, url: str | None) -> None:
        """Where events go from now on; ``None`` stops sending (queued events are dropped)."""
        self._url = checked_webhook_url(url)

    def events_for(self, api: str) -> ApiEvents:
        if api not in SANDBOX_WEBHOOK_SCHEMES:
            raise ValueError(f"unknown sandbox API {api!r}")
        return ApiEvents(self, api)

    def _new_event_id(self) -> str:
        # A per-process sequence keeps ids unique (and ordered) within a run; the random
        # part keeps them unique across restarts, which a receiver's dedupe relies on.
        return f"evt_{next(self._ids):08x}{secrets.token_hex(8)}"

    def emit(self, api: str, type: str, data: Mapping[str, Any]) -> None:
        if self._url is None:
            return
        event_id = self._new_event_id()
        body = orjson.dumps(
            {"id": event_id, "type": type, "created": int(time.time()), "data": data}
        )
        try:
            queue = self._queue(api)
            queue.put_nowait(_Pending(event_id, type, body))
        except (asyncio.QueueFull, RuntimeError):
            # RuntimeError: no running loop (an API driven outside the server); nothing
            # could ever deliver the event.
            self.counters.dropped += 1
            return
        self.counters.emitted += 1

    def _queue(self, api: str) -> asyncio.Queue[_Pending]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # First use, or the sandbox was restarted on another loop: tasks and queues of
            # the old loop cannot be used from this one.
            self._loop = loop
            self._queues = {}
            self._workers = {}
            self._core = None
        queue = self._queues.get(api)
        if queue is None:
            queue = self._queues[api] = asyncio.Queue(self.queue_size)
            self._workers[api] = loop.create_task(
                self._work(api, queue), name=f"sandbox-webhooks-{api}"
            )
        return queue

    async def _work(self, api: str, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            pending = await queue.get()
            try:
                await self._deliver(api, pending)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug must not kill the worker (every later event would stall).
                log.exception("sandbox webhook %s (%s) could not be sent", pending.type, api)
                self.counters.failed += 1
            finally:
                queue.task_done()

    def _http(self) -> HttpCore:
        if self._core is None:
            # Patchwire's HTTP core, like every request Patchwire sends; the sandbox is a
            # local test upstream posting to whatever receiver it is told, so its SSRF
            # guard admits every address (a receiver on loopback above all)
            self._core = HttpCore(allow_networks=("0.0.0.0/0", "::/0"))
        return self._core

    def _headers(self, api: str, pending: _Pending) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENTS[api],
            **sign(
                SANDBOX_WEBHOOK_SCHEMES[api],
                self.secrets[api],
                pending.body,
                timestamp=time.time(),
                event_id=pending.event_id,
            ),
        }
        if api == "shop":
            headers["X-Shopify-Topic"] = _SHOPIFY_TOPICS.get(pending.type, pending.type)
            headers["X-Shopify-Shop-Domain"] = "patchwire-sandbox.myshopify.com"
            headers["X-Shopify-API-Version"] = "2025-01"
        elif api == "helpdesk":
            headers["X-GitHub-Event"] = pending.type
            headers["X-GitHub-Hook-ID"] = "1"
        return headers

    async def _deliver(self, api: str, pending: _Pending) -> None:
        attempts = len(self.retry_delays) + 1
        status: int | None = None
        for attempt in range(attempts):
            url = self._url
            if url is None:
                self.counters.dropped += 1
                return
            status = None
            try:
                response = await self._http().exchange(
                    PreparedRequest("POST", url, self._headers(api, pending),
                                    data=pending.body, idempotent=False), self._limits)
                status = response.status
            except CallError as exc:
                log.debug("sandbox webhook %s (%s): %s", pending.type, api, type(exc).__name__)
            if status is not None and 200 <= status < 300:
                self.counters.sent += 1
                return
            if status is not None and status < 500 and status != 429:
                break  # the receiver refused this event: asking again changes nothing
            if attempt + 1 < attempts:
                self.counters.retries += 1
                await asyncio.sleep(self.retry_delays[attempt])
        self.counters.failed += 1
        # The URL is not logged: it may carry a token in its query or user info.
        log.warning(
            "sandbox webhook %s %s (%s) was not accepted (last status %s)",
            pending.type,
            pending.event_id,
            api,
            status,
        )

    async def flush(self, within_s: float = 5.0) -> None:
        """Waits until every queued event was delivered or given up on.

        Raises TimeoutError after ``within_s`` seconds.
        """
        if self._loop is not asyncio.get_running_loop():
            return  # nothing was queued on this loop
        async with asyncio.timeout(within_s):
            for queue in list(self._queues.values()):
                await queue.join()

    async def close(self, drain_timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Stops the workers after giving queued events ``drain_timeout`` seconds to go."""
        if self._loop is asyncio.get_running_loop():
            with contextlib.suppress(TimeoutError):
                await self.flush(drain_timeout)
            workers = list(self._workers.values())
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if self._core is not None:
                await self._core.close()
        # Workers of another (finished) loop cannot be touched from here; they died with it.
        self._core = None
        self._queues = {}
        self._workers = {}
        self._loop = None
