"""The HTTP core: one aiohttp session for every upstream request, with timeouts, retries
and typed errors. Nothing else in Patchwire talks HTTP to an upstream.

aiohttp rather than httpx: DESIGN.md records httpx's default transport at a fraction of
aiohttp's throughput on these machines, and the call path must stay within 15% of a raw
aiohttp loop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from time import time
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from patchwire.connectors.spec import RetryPolicy, Timeouts
from patchwire.errors import CallContext, CallTimeoutError, TransportError

__all__ = [
    "HttpCore",
    "PreparedRequest",
    "RawResponse",
    "RetryDecision",
    "backoff_delay",
    "parse_retry_after",
    "set_instant_retries",
]

_RETRYABLE_TRANSPORT = (aiohttp.ClientConnectionError, asyncio.TimeoutError)
_instant_retries = False


def set_instant_retries(enabled: bool) -> None:
    """Testing switch: backoff waits become zero (decisions are unchanged)."""
    global _instant_retries
    _instant_retries = enabled


@dataclass(slots=True)
class PreparedRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    cookies: dict[str, str] | None = None
    json: Any = None
    data: Any = None  # form fields (dict) or aiohttp.FormData
    idempotent: bool = True


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    @property
    def ok(self) -> bool:
        return self.status < 400


@dataclass(slots=True)
class RetryDecision:
    attempts: int = 0
    retries: int = 0
    waited: float = 0.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date, RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time() if now is None else now))


def backoff_delay(policy: RetryPolicy, retry_number: int, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter (retry_number starts at 1)."""
    cap = min(policy.backoff_max, policy.backoff_initial * (2 ** (retry_number - 1)))
    return rng.uniform(0, cap)


class HttpCore:
    """Owns the connection pool. ``send`` performs one logical request (with retries)."""

    def __init__(
        self,
        *,
        limit: int = 256,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        # keyed by identity: hashing a pydantic model on every call costs more than the call
        self._timeouts: dict[int, tuple[Timeouts, aiohttp.ClientTimeout]] = {}
        self._sleep = sleep
        self._rng = rng or random.Random()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300),
                auto_decompress=True,
                raise_for_status=False,
                # cookies belong to connections, never to the shared session
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeout(self, t: Timeouts) -> aiohttp.ClientTimeout:
        entry = self._timeouts.get(id(t))
        if entry is not None and entry[0] is t:
            return entry[1]
        # A read timeout no shorter than the total one can never fire first, and aiohttp
        # re-arms it on every chunk received: leave it out then.
        ct = aiohttp.ClientTimeout(
            total=t.total, connect=t.connect, sock_read=t.read if t.read < t.total else None
        )
        self._timeouts[id(t)] = (t, ct)  # holding t keeps its id from being reused
        return ct

    async def send(
        self,
        req: PreparedRequest,
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        context: CallContext,
        decision: RetryDecision,
    ) -> RawResponse:
        session = self._get_session()
        timeout = self._timeout(timeouts)
        while True:
            decision.attempts += 1
            try:
                response = await self._attempt(session, req, timeout)
            except _RETRYABLE_TRANSPORT as exc:
                if self._may_retry(req, retry, decision, status=None):
                    await self._wait(backoff_delay(retry, decision.attempts, self._rng), decision)
                    continue
                raise _transport_error(exc, timeouts, context, decision) from exc
            except aiohttp.ClientError as exc:  # invalid URL, bad payload: retrying won't help
                raise _transport_error(exc, timeouts, context, decision) from exc
            transient = response.status in retry.retry_on_status or (
                response.status == 500 and req.idempotent
            )
            if transient and self._may_retry(req, retry, decision, status=response.status):
                delay = self._server_delay(response, retry)
                if delay is None:
                    delay = backoff_delay(retry, decision.attempts, self._rng)
                # Beyond the cap the caller gets the 429/503 with its retry_after instead.
                if delay <= retry.retry_after_cap:
                    await self._wait(delay, decision)
                    continue
            return response

    async def _attempt(
        self, session: aiohttp.ClientSession, req: PreparedRequest, limits: aiohttp.ClientTimeout
    ) -> RawResponse:
        async with session.request(
            req.method,
            req.url,
            headers=req.headers,
            params=req.params,
            cookies=req.cookies,
            json=req.json if req.data is None else None,
            data=req.data,
            timeout=limits,
            allow_redirects=True,
        ) as resp:
            body = await resp.read()
            return RawResponse(resp.status, resp.headers, body, str(resp.url))

    @staticmethod
    def _may_retry(
        req: PreparedRequest, retry: RetryPolicy, decision: RetryDecision, *, status: int | None
    ) -> bool:
        if decision.attempts >= retry.attempts:
            return False
        # A 429 or 503 was refused before any effect; anything else may have had one.
        return req.idempotent or status in (429, 503)

    @staticmethod
    def _server_delay(response: RawResponse, retry: RetryPolicy) -> float | None:
        delay = parse_retry_after(response.headers.get("Retry-After"))
        if delay is not None:
            return delay
        for name in retry.reset_headers:
            raw = response.headers.get(name)
            if raw and raw.replace(".", "", 1).isdigit():
                value = float(raw)
                # Both conventions exist: seconds to wait, or an epoch timestamp.
                return max(0.0, value - time()) if value > 1e9 else value
        return None

    async def _wait(self, delay: float, decision: RetryDecision) -> None:
        decision.retries += 1
        decision.waited += delay
        if delay > 0 and not _instant_retries:
            await self._sleep(delay)


def _transport_error(
    exc: BaseException, timeouts: Timeouts, context: CallContext, decision: RetryDecision
) -> Exception:
    tries = f"after {decision.attempts} attempt{'s' if decision.attempts != 1 else ''}"
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return CallTimeoutError(
            f"no complete response within the timeout (connect {timeouts.connect:g}s, "
            f"read {timeouts.read:g}s, total {timeouts.total:g}s) {tries}",
            context=context,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        reason = "the server closed the connection without a response"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        reason = f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc})"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return TransportError(f"connection error {tries}: {reason}", context=context)
