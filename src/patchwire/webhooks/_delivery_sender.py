"""Sending one delivery: the signed Standard Webhooks request and what came of it.

Requests carry the Standard Webhooks headers (``webhook-id`` = the event id, the same on
every retry and for every endpoint, ``webhook-timestamp``, ``webhook-signature``
``v1,<base64 HMAC-SHA256>``) and the payload ``{"type", "timestamp", "data"}``. They go
through the SSRF guard of the call path: private and loopback endpoints are refused unless
``Settings.allow_networks`` admits them. Redirects are not followed (a 3xx is a failure,
as the Standard Webhooks spec recommends). Error excerpts are redacted (the secret never
shows in a record or a log line).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver

from patchwire.http import (
    DestinationPolicy,
    DestinationRefused,
    GuardedConnector,
    WireConnectError,
    WirePool,
    excerpt,
    parse_retry_after,
)
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
    """Sends deliveries over HTTP through the SSRF guard of ``policy``, at most ``limit``
    connections open at once."""

    def __init__(self, policy: DestinationPolicy, *, clock: Callable[[], float],
                 limit: int, timeout: float = REQUEST_TIMEOUT_S,
                 connect_timeout: float = CONNECT_TIMEOUT_S,
                 resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.clock = clock
        self._limit = max(limit, 1)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._wire_pool: WirePool | None = None

    async def close(self) -> None:
        if self._wire_pool is not None:
            await self._wire_pool.close()
            self._wire_pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _wire(self) -> WirePool:
        if self._wire_pool is None:
            self._wire_pool = WirePool.beside(self._get_session(), limit=self._limit)
        return self._wire_pool

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # the SSRF guard of the call path: every new connection is checked
                connector=GuardedConnector(self.policy, resolver=self._resolver,
                                           limit=self._limit, ttl_dns_cache=300),
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
                timeout=self._timeout,
            )
        return self._session

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
            # the call path's own HTTP/1.1 connections (same SSRF guard), a third of the
            # CPU of an aiohttp request; whatever they cannot send goes through aiohttp
            answer = await self._wire().exchange("POST", ep.url, headers, None, body,
                                                 self._timeout, max_body=RESPONSE_READ_LIMIT)
            if answer is None:
                async with self._get_session().post(ep.url, data=body, headers=headers,
                                                    allow_redirects=False) as resp:
                    answer = (resp.status, resp.headers,
                              await resp.content.read(RESPONSE_READ_LIMIT), ep.url)
            status, answer_headers, payload, _ = answer
            if not 200 <= status < 300:
                retry_after = parse_retry_after(answer_headers.get("Retry-After"),
                                                now=self.clock())
                text = excerpt(payload, ep.redact, 300)
                error = f"HTTP {status}" + (f": {text}" if text else "")
        except DestinationRefused as exc:
            error = f"refused by the SSRF guard: {exc}"
        except TimeoutError:
            error = (f"no response within {self._timeout.total:g} s "
                     f"(connect {self._timeout.connect:g} s)")
        except (aiohttp.ClientConnectorError, WireConnectError) as exc:
            error = f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc})"
        except aiohttp.ClientError as exc:
            error = ep.redact(f"{type(exc).__name__}: {exc}")[:300]
        latency = (time.perf_counter() - started) * 1000.0
        return Outcome(status, latency, error, retry_after)
