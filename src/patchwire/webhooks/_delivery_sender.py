"""Sending one delivery: the signed Standard Webhooks request and what came of it.

Requests carry the Standard Webhooks headers (``webhook-id`` = the event id, the same on
every retry and for every endpoint, ``webhook-timestamp``, ``webhook-signature``
``v1,<base64 HMAC-SHA256>``) and the payload ``{"type", "timestamp", "data"}``. They go
through the call path's HTTP core (:meth:`~patchwire.http.HttpCore.exchange`: one attempt,
the same transports, SSRF guard, limits and error mapping as every call): private and
loopback endpoints are refused unless ``Settings.allow_networks`` admits them. Redirects
are not followed (a 3xx is a failure, as the Standard Webhooks spec recommends). Error
excerpts are redacted (the secret never shows in a record or a log line).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson

from patchwire.errors import BlockedDestinationError, CallContext, CallError
from patchwire.http import HttpCore, Limits, PreparedRequest, excerpt, parse_retry_after
from patchwire.webhooks._delivery_records import iso
from patchwire.webhooks._endpoint_leases import Endpoint, PendingDelivery
from patchwire.webhooks._schemes import SchemeSettings, sign

__all__ = ["CONNECT_TIMEOUT_S", "REQUEST_TIMEOUT_S", "DeliverySender", "Outcome"]

#: per-request timeouts: the Standard Webhooks spec recommends 15-30 s for the whole request
REQUEST_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
#: bytes of a response read (for the log excerpt); the rest is not waited for
RESPONSE_READ_LIMIT = 64 * 1024
USER_AGENT = "Patchwire-Webhooks/0.1"
#: outbound requests are signed the way the receiver verifies Standard Webhooks
_STANDARD = SchemeSettings(scheme="standard")


@dataclass(slots=True)
class Outcome:
    """What one attempt came to: the status (None: no answer), why it failed."""

    status_code: int | None
    latency_ms: float
    error: str | None
    retry_after: float | None


class DeliverySender:
    """Sends deliveries through ``http`` (the call path's HTTP core), one attempt each."""

    def __init__(self, http: HttpCore, *, clock: Callable[[], float],
                 timeout: float = REQUEST_TIMEOUT_S,
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.http = http
        self.clock = clock
        # only the first 64 KiB of an answer are read (kept for the excerpt)
        self._limits = Limits(aiohttp.ClientTimeout(total=timeout, connect=connect_timeout),
                              max_body=RESPONSE_READ_LIMIT, truncate=True)

    async def send(self, ep: Endpoint, item: PendingDelivery) -> Outcome:
        body = orjson.dumps({"type": item.event_type,
                             "timestamp": iso(item.event_created_at),
                             "data": item.data})
        timestamp = int(self.clock())
        # identity: only the first 64 KiB of an answer are read, and a cut-short gzip
        # stream could not be decoded
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   "accept-encoding": "identity",
                   **sign(_STANDARD, ep.secret, body, timestamp=timestamp,
                          event_id=item.event_id)}
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            answer = await self.http.exchange(
                PreparedRequest("POST", ep.url, headers, data=body, idempotent=False),
                self._limits, context=CallContext(), follow_redirects=False)
            status = answer.status
            if not 200 <= status < 300:
                retry_after = parse_retry_after(answer.headers.get("Retry-After"),
                                                now=self.clock())
                text = excerpt(answer.body, ep.redact, 300)
                error = f"HTTP {status}" + (f": {text}" if text else "")
        except BlockedDestinationError as exc:
            error = f"refused by the SSRF guard: {exc.message}"
        except CallError as exc:  # a timeout or a transport error, in the core's words
            error = ep.redact(exc.message)[:300]
        latency = (time.perf_counter() - started) * 1000.0
        return Outcome(status, latency, error, retry_after)
