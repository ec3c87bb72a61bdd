"""The HTTP core: one aiohttp session for every upstream request, with timeouts, retries,
rate limits, a concurrency cap and a circuit breaker, and typed errors. Nothing else in
Patchwire talks HTTP to an upstream.

aiohttp rather than httpx: docs/architecture.md records httpx's default transport at a fraction of
aiohttp's throughput on these machines, and the call path must stay within 15% of a raw
aiohttp loop. So the per-call work here is kept to dict lookups and counters: no store
round trip and no per-call objects beyond the response, and ordinary requests skip the
session's per-request machinery on kept-alive HTTP/1.1 connections of our own
(``_wire.py``: same SSRF guard, timeouts and error types; ``wire=False`` turns it off).
The one store round trip is opted into: with ``shared_concurrency`` a capped connector's
call takes a slot in the store (see :meth:`HttpCore.share_concurrency`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDictProxy
from yarl import URL

from patchwire.connectors.spec import ConnectorSpec, RetryPolicy, Timeouts
from patchwire.errors import (
    BlockedDestinationError,
    CallContext,
    CallTimeoutError,
    CircuitOpenError,
    RateLimitedError,
    TransportError,
)
from patchwire.http._breaker import BreakerPolicy, BreakerState, CircuitBreaker
from patchwire.http._budget import RetryBudget
from patchwire.http._guard import ConnectorGuard, HeldSlot, SharedSlots, SlotSource
from patchwire.http._ratelimit import Bucket, CallLater, RateLimiters
from patchwire.http._retry import (
    RetryDecision,
    backoff_delay,
    is_transient_status,
    retries_are_instant,
    server_delay,
)
from patchwire.http._ssrf import DestinationPolicy, DestinationRefused, GuardedConnector
from patchwire.http._wire import WireConnectError, WirePool, bad_status
from patchwire.observability import observe_rate_limit_wait
from patchwire.observability import tracing as _tracing

__all__ = ["HttpCore", "PreparedRequest", "RawResponse"]

_RETRYABLE_TRANSPORT = (aiohttp.ClientConnectionError, asyncio.TimeoutError)
#: statuses aiohttp follows (``allow_redirects``)
REDIRECTS = frozenset({301, 302, 303, 307, 308})

#: polling for a concurrency slot in the store backs off from the first delay, doubling up
#: to the second: a slot frees when some call ends, which no process is told about
SLOT_POLL_FIRST = 0.005
SLOT_POLL_MAX = 0.1
#: a store slot outlives its attempt's total timeout by this much before another process
#: may take it over (the holder died): room for a stalled loop, the release's round trip
#: and clock differences between hosts
SLOT_EXPIRY_MARGIN = 10.0


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
    #: names (lower case) of the headers that carry the connection's credentials: a
    #: redirect to another origin drops them, as it drops Authorization and cookies
    credentials: frozenset[str] = frozenset()


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    @property
    def ok(self) -> bool:
        return self.status < 400


class HttpCore:
    """Owns the connection pool and the per-connector resilience state.

    ``send`` performs one logical request: breaker check, rate-limit slot, concurrency
    slot, attempt, and retries within the policy and the connector's retry budget.
    """

    def __init__(
        self,
        *,
        limit: int = 256,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        breaker: BreakerPolicy | None = None,
        retry_budget_ratio: float = 0.1,
        retry_budget_min: int = 10,
        allow_networks: Iterable[str] = (),
        resolver: AbstractResolver | None = None,
        call_later: CallLater | None = None,
        wire: bool = True,
    ) -> None:
        """``allow_networks``: CIDRs and host names the SSRF guard admits besides public
        addresses (see ``http/_ssrf.py``). ``resolver`` replaces the DNS lookup under the
        guard (tests). ``call_later`` schedules the rate limiters' wake-ups (a fake timer
        wheel in tests, with a fake ``clock``). ``wire=False`` sends every request through
        the aiohttp session (the reference path ``bench/call_overhead.py`` compares)."""
        self._limit = limit
        self.destinations = DestinationPolicy.from_allow_list(allow_networks)
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._wire: WirePool | None = None
        self.wire = wire
        # keyed by identity: hashing a pydantic model on every call costs more than the call
        self._timeouts: dict[int, tuple[Timeouts, aiohttp.ClientTimeout]] = {}
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._breaker_policy = breaker or BreakerPolicy()
        self._budget_ratio = retry_budget_ratio
        self._budget_min = retry_budget_min
        self.limiters = (RateLimiters(clock=clock) if call_later is None
                         else RateLimiters(clock=clock, call_later=call_later))
        self._guards: dict[str, ConnectorGuard] = {}
        #: concurrency slots in the store, when caps hold across processes
        self.slots: SharedSlots | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # the SSRF guard checks every new connection, redirect hops included
                connector=GuardedConnector(self.destinations, resolver=self._resolver,
                                           limit=self._limit, ttl_dns_cache=300),
                auto_decompress=True,
                raise_for_status=False,
                # cookies belong to connections, never to the shared session
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._wire is not None:
            await self._wire.close()
            self._wire = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def share_concurrency(self, source: SlotSource, *, wall: Callable[[], float] = time.time,
                          holder: str | None = None) -> SharedSlots:
        """Hold connectors' ``concurrency`` caps together with every other process using
        ``source``: a capped call then also takes a slot in the store (a round trip to take
        it and one to give it back). Uncapped connectors never touch the store."""
        self.slots = SharedSlots(source, wall=wall, holder=holder)
        return self.slots

    async def unshare_concurrency(self) -> None:
        """Stop sharing (before the store closes), once releases in flight are written."""
        slots, self.slots = self.slots, None
        if slots is not None:
            await slots.close()

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

    # -- per-connector state ---------------------------------------------------------------

    def guard(self, spec: ConnectorSpec) -> ConnectorGuard:
        g = self._guards.get(spec.name)
        if g is not None and g.spec is spec:
            return g
        policy = self._breaker_policy_of(spec)
        if g is not None:
            # a reloaded spec keeps the connector's health and budget history
            breaker, budget = g.breaker, g.budget
            breaker.policy = policy
            if g.spec.rate_limits != spec.rate_limits:
                self.limiters.drop(spec.name)
        else:
            breaker = CircuitBreaker(spec.name, policy, clock=self._clock)
            budget = RetryBudget(ratio=self._budget_ratio, min_retries=self._budget_min,
                                 clock=self._clock)
        g = self._guards[spec.name] = ConnectorGuard(spec, breaker, budget, self.limiters)
        return g

    def _breaker_policy_of(self, spec: ConnectorSpec) -> BreakerPolicy:
        """The connector's ``breaker:`` settings over the engine's defaults."""
        if spec.breaker is None:
            return self._breaker_policy
        given = {k: v for k, v in spec.breaker.model_dump().items() if v is not None}
        policy = dataclasses.replace(self._breaker_policy, **given)
        if policy.min_calls > policy.window_calls:  # else it could never open
            policy = dataclasses.replace(policy, window_calls=policy.min_calls)
        return policy

    def breaker_state(self, connector: str) -> BreakerState:
        """The circuit breaker of ``connector`` (closed if it never made a call)."""
        g = self._guards.get(connector)
        if g is None:
            return BreakerState(connector, "closed", 0, 0, None, None)
        return g.breaker.snapshot()

    # -- the call --------------------------------------------------------------------------

    async def send(
        self,
        req: PreparedRequest,
        *,
        timeouts: Timeouts,
        retry: RetryPolicy,
        context: CallContext,
        decision: RetryDecision,
        connector: ConnectorSpec | None = None,
        connection: str | None = None,
    ) -> RawResponse:
        """One logical request. Without ``connector`` only retries apply (no limits,
        breaker or budget), which is what one-off requests like token exchanges want."""
        session = self._get_session()
        timeout = self._timeout(timeouts)
        guard = self.guard(connector) if connector is not None else None
        max_body = connector.max_response_bytes if connector is not None else None
        retryable = req.idempotent
        if not retryable and retry.idempotency_header:
            # One key per logical call, sent on every attempt: the upstream applies the
            # request at most once however many attempts reach it.
            name = retry.idempotency_header
            if not any(k.lower() == name.lower() for k in req.headers):
                req.headers[name] = uuid.uuid4().hex
            retryable = True
        if guard is not None:
            guard.budget.record_first()
        while True:
            if guard is not None:
                plan = guard.buckets(connection)
                # fast path without a coroutine: closed breaker, one bucket with a slot free
                if not (guard.breaker.state == "closed" and len(plan) == 1
                        and plan[0].try_take()):
                    await self._admit(guard, connection, retry, context, decision)
            decision.attempts += 1
            try:
                if guard is not None and guard.semaphore is not None:
                    semaphore = guard.semaphore
                    if semaphore.locked():  # the cap is reached: time the wait (only then)
                        waited_from = self._clock()
                        await semaphore.acquire()
                        decision.rate_limit_wait += self._clock() - waited_from
                    else:
                        await semaphore.acquire()
                    try:
                        slots = self.slots
                        if slots is None:
                            response = await self._attempt(session, req, timeout, context,
                                                           decision.attempts, max_body)
                        else:
                            response = await self._attempt_in_slot(
                                slots, guard.spec, session, req, timeout, timeouts, context,
                                decision)
                    finally:
                        semaphore.release()
                else:
                    response = await self._attempt(session, req, timeout, context,
                                                   decision.attempts, max_body)
            except _RETRYABLE_TRANSPORT as exc:
                if guard is not None:
                    guard.breaker.record(False)
                if self._may_retry(retryable, retry, decision, guard):
                    await self._wait(backoff_delay(retry, decision.attempts, self._rng),
                                     decision)
                    continue
                raise _transport_error(exc, timeouts, context, decision) from exc
            except DestinationRefused as exc:  # the guard's answer will not change on retry
                if guard is not None:
                    guard.breaker.release_probe()
                raise BlockedDestinationError(
                    str(exc), host=exc.host, address=exc.address, reason=exc.reason,
                    context=context,
                ) from None
            except aiohttp.ClientError as exc:  # invalid URL, bad payload: retrying won't help
                if guard is not None:
                    guard.breaker.release_probe()
                raise _transport_error(exc, timeouts, context, decision) from exc
            except BaseException:
                if guard is not None:
                    guard.breaker.release_probe()
                raise
            status = response.status
            transient = is_transient_status(status, retry, idempotent=retryable)
            if guard is not None:
                # 429 and other 4xx say nothing about the upstream's health
                guard.breaker.record_status(status, transient=transient)
                self._note_limits(guard, connection, response, retry)
            if transient and self._may_retry(retryable, retry, decision, guard):
                delay = server_delay(response.headers, retry)
                if delay is None:
                    delay = backoff_delay(retry, decision.attempts, self._rng)
                if delay <= retry.retry_after_cap:
                    waited = await self._wait(delay, decision)
                    if status == 429:  # the upstream's rate limit held this call
                        decision.rate_limit_wait += waited
                    continue
                # Beyond the cap the caller gets the 429/503 with when to retry instead.
                decision.retry_after = delay
                decision.stopped = "server asked to wait beyond the cap"
            elif transient and decision.retry_after is None:
                decision.retry_after = server_delay(response.headers, retry)
            return response

    async def _admit(self, guard: ConnectorGuard, connection: str | None, retry: RetryPolicy,
                     context: CallContext, decision: RetryDecision) -> None:
        """Breaker first (an open circuit fails without waiting), then rate-limit slots.

        Time spent queued for a slot (a declared limit, or a pause after a 429 or
        ``X-RateLimit-Remaining: 0``) is added to ``decision.rate_limit_wait``; a slot
        free at once costs no clock read."""
        probe_at = guard.breaker.allow()
        if probe_at is not None:
            wait = max(0.0, probe_at - self._clock())
            when = time.time() + wait
            raise CircuitOpenError(
                f"circuit breaker for {guard.spec.name} is open after repeated upstream "
                f"failures; failing fast without a request. Next probe at "
                f"{_iso(when)} (in {wait:.1f}s)",
                probe_at=when, retry_after=wait, context=context,
            )
        try:
            for bucket in guard.buckets(connection):
                if bucket.try_take():
                    continue
                paused_for = bucket.paused_until - self._clock()
                if paused_for > retry.retry_after_cap:
                    raise _paused_error(bucket, paused_for, retry, context)
                waited_from = self._clock()
                await bucket.acquire()
                waited = self._clock() - waited_from
                decision.rate_limit_wait += waited
                observe_rate_limit_wait(guard.spec.name, waited)
        except BaseException:
            guard.breaker.release_probe()
            raise

    async def _attempt_in_slot(
        self, slots: SharedSlots, spec: ConnectorSpec, session: aiohttp.ClientSession,
        req: PreparedRequest, limits: aiohttp.ClientTimeout, timeouts: Timeouts,
        context: CallContext, decision: RetryDecision,
    ) -> RawResponse:
        """One attempt holding a slot of the connector's cap in the store. The local
        semaphore is already held, so this process queues its own callers in order and
        only as many as the cap ever poll the store."""
        held = await self._take_slot(slots, spec, timeouts, context, decision)
        try:
            return await self._attempt(session, req, limits, context, decision.attempts,
                                       spec.max_response_bytes)
        finally:
            await slots.release(held)

    async def _take_slot(self, slots: SharedSlots, spec: ConnectorSpec, timeouts: Timeouts,
                         context: CallContext, decision: RetryDecision) -> HeldSlot:
        """A store slot of ``spec``'s cap, polling with capped exponential backoff while
        other processes hold them all; the wait counts as a rate-limit wait and lasts at
        most the total timeout (then CallTimeoutError: no request was sent)."""
        cap = spec.concurrency
        assert cap is not None
        ttl = timeouts.total + SLOT_EXPIRY_MARGIN
        held = await slots.try_take(spec.name, cap, ttl)
        if held is not None:
            return held
        started = self._clock()
        deadline = started + timeouts.total
        delay = SLOT_POLL_FIRST
        try:
            while True:
                left = deadline - self._clock()
                if left <= 0:
                    raise CallTimeoutError(
                        f"no concurrency slot of {spec.name} came free within the total "
                        f"timeout ({timeouts.total:g}s): all {cap} are held by calls in "
                        f"flight in the processes sharing the store; no request was sent",
                        context=context,
                    )
                await self._sleep(min(delay, left))
                delay = min(delay * 2, SLOT_POLL_MAX)
                held = await slots.try_take(spec.name, cap, ttl)
                if held is not None:
                    return held
        finally:
            decision.rate_limit_wait += self._clock() - started

    def _note_limits(self, guard: ConnectorGuard, connection: str | None,
                     response: RawResponse, retry: RetryPolicy) -> None:
        """A 429 or ``X-RateLimit-Remaining: 0`` pauses the connection's bucket until the
        reset, so the other callers wait instead of spending requests on refusals."""
        headers = response.headers
        if response.status != 429 and headers.get("X-RateLimit-Remaining") != "0":
            return
        if retries_are_instant():
            return  # the testing setting: no real waiting anywhere
        delay = server_delay(headers, retry)
        if delay is None:
            delay = 1.0 if response.status == 429 else 0.0
        if delay > 0:
            guard.buckets(connection)[-1].pause(delay)

    @staticmethod
    def _may_retry(retryable: bool, retry: RetryPolicy, decision: RetryDecision,
                   guard: ConnectorGuard | None) -> bool:
        if decision.attempts >= retry.attempts:
            return False
        if not retryable:
            decision.stopped = "not idempotent and no idempotency key"
            return False
        if guard is not None and not guard.budget.try_retry():
            decision.stopped = f"retry budget of {guard.spec.name} spent"
            return False
        return True

    async def _attempt(
        self, session: aiohttp.ClientSession, req: PreparedRequest,
        limits: aiohttp.ClientTimeout, context: CallContext | None = None, attempt: int = 1,
        max_body: int | None = None,
    ) -> RawResponse:
        # observability: a span per attempt and its traceparent header, only when tracing
        # is on (off, this costs one attribute check)
        span = _tracing.start_attempt(req, context, attempt) if _tracing.active else None
        try:
            data = req.data
            answer = None
            if (self.wire and req.cookies is None and req.json is None
                    and req.method != "HEAD" and (data is None or type(data) is bytes)):
                sent_at = time.monotonic()
                answer = await self._wire_pool(session).exchange(
                    req.method, req.url, req.headers, req.params, data, limits,
                    max_body=max_body, truncate=False)
            if answer is None:
                raw = await self._via_session(session, req, limits, max_body=max_body)
            else:
                raw = RawResponse(*answer)
                if raw.status in REDIRECTS:
                    if limits.total is not None:  # the total covers the whole chain
                        left = limits.total - (time.monotonic() - sent_at)
                        if left <= 0:
                            raise TimeoutError
                        limits = aiohttp.ClientTimeout(
                            total=left, connect=limits.connect, sock_read=limits.sock_read,
                            sock_connect=limits.sock_connect,
                            ceil_threshold=limits.ceil_threshold)
                    raw = await self._follow_redirect(session, req, raw, limits, max_body)
        except BaseException as exc:
            if span is not None:
                _tracing.attempt_failed(span, exc)
            raise
        if span is not None:
            _tracing.attempt_finished(span, raw.status)
        return raw

    def _wire_pool(self, session: aiohttp.ClientSession) -> WirePool:
        wire = self._wire
        if wire is None:
            wire = self._wire = WirePool.beside(session, limit=self._limit)
        return wire

    @staticmethod
    async def _via_session(
        session: aiohttp.ClientSession, req: PreparedRequest, limits: aiohttp.ClientTimeout,
        *, max_redirects: int = 10, max_body: int | None = None,
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
            max_redirects=max_redirects,
            # aiohttp drops Authorization and cookies when a redirect leaves the origin,
            # but knows nothing of an X-Api-Key
            middlewares=(_credentials_stay_home(req.credentials),) if req.credentials
            else None,
        ) as resp:
            if not 100 <= resp.status <= 599:  # as the wire refuses it
                raise aiohttp.ClientPayloadError(f"malformed HTTP response: "
                                                 f"{bad_status(resp.status)}")
            if max_body is None:
                body = await resp.read()
            else:
                body = await _read_at_most(resp, max_body)
            return RawResponse(resp.status, resp.headers, body, str(resp.url))

    async def _follow_redirect(
        self, session: aiohttp.ClientSession, req: PreparedRequest, first: RawResponse,
        limits: aiohttp.ClientTimeout, max_body: int | None,
    ) -> RawResponse:
        """The rest of a redirect chain whose first hop came back over the wire, through
        aiohttp (its connector guards every hop), with aiohttp's own rules for the hop:
        303 (and 301/302 after a POST) become a GET without body; leaving the origin drops
        credentials (the connection's own headers too)."""
        location = first.headers.get("Location") or first.headers.get("URI")
        if location is None:
            return first
        url = URL(req.url)
        try:
            target = URL(location)
        except ValueError as exc:
            raise aiohttp.InvalidUrlRedirectClientError(
                location, "Server attempted redirecting to a location that does not look "
                "like a URL") from exc
        if target.scheme not in ("http", "https", ""):
            raise aiohttp.NonHttpUrlRedirectClientError(location)
        if not target.scheme or not target.absolute:
            target = url.join(target)
        method, data = req.method, req.data
        headers = dict(req.headers)
        if (first.status == 303 and method != "HEAD") or (
                first.status in (301, 302) and method == "POST"):
            method, data = "GET", None
            for name in [k for k in headers if k.lower() == "content-length"]:
                del headers[name]
        credentials = req.credentials
        if url.origin() != target.origin():
            for name in [k for k in headers if k.lower() in _ORIGIN_BOUND
                         or k.lower() in credentials]:
                del headers[name]
            credentials = frozenset()  # gone for the rest of the chain
        hop = PreparedRequest(method, str(target), headers, None, req.cookies, req.json, data,
                              req.idempotent, credentials)
        return await self._via_session(session, hop, limits, max_redirects=9,
                                       max_body=max_body)

    async def _wait(self, delay: float, decision: RetryDecision) -> float:
        """Back off ``delay`` seconds before a retry; returns the seconds slept (0 under
        the instant-retries testing setting)."""
        decision.retries += 1
        decision.waited += delay
        if delay > 0 and not retries_are_instant():
            await self._sleep(delay)
            return delay
        return 0.0


#: headers aiohttp drops when a redirect leaves the origin
_ORIGIN_BOUND = frozenset({"authorization", "cookie", "proxy-authorization"})


def _credentials_stay_home(names: frozenset[str]) -> aiohttp.ClientMiddlewareType:
    """A middleware for one request through aiohttp: once a redirect hop changes origin,
    this hop and every later one go without the headers ``names`` (as aiohttp itself
    does with Authorization, comparing each hop with the one before)."""
    previous: URL | None = None
    left_home = False

    async def middleware(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
                         ) -> aiohttp.ClientResponse:
        nonlocal previous, left_home
        origin = request.url.origin()
        if previous is not None and origin != previous:
            left_home = True
        previous = origin
        if left_home:
            for name in names:
                request.headers.popall(name, None)
        return await handler(request)

    return middleware


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ClientPayloadError as soon as it is longer than ``limit``."""
    too_long = aiohttp.ClientPayloadError(
        f"the response body is larger than {limit} bytes (max_response_bytes)")
    if resp.content_length is not None and resp.content_length > limit:
        raise too_long
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_long
        chunks.append(chunk)
    return b"".join(chunks)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _paused_error(bucket: Bucket, paused_for: float, retry: RetryPolicy,
                  context: CallContext) -> RateLimitedError:
    when = time.time() + paused_for
    return RateLimitedError(
        f"{bucket.name} is rate limited by the upstream until {_iso(when)} "
        f"(in {paused_for:.0f}s, beyond the {retry.retry_after_cap:g}s wait cap); "
        f"retry after then",
        status=429, retry_after=paused_for, context=context,
    )


def _transport_error(
    exc: BaseException, timeouts: Timeouts, context: CallContext, decision: RetryDecision
) -> Exception:
    tries = f"after {decision.attempts} attempt{'s' if decision.attempts != 1 else ''}"
    if decision.stopped:
        tries += f" ({decision.stopped})"
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return CallTimeoutError(
            f"no complete response within the timeout (connect {timeouts.connect:g}s, "
            f"read {timeouts.read:g}s, total {timeouts.total:g}s) {tries}",
            context=context,
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError(f"the response could not be read {tries}: {exc}",
                              context=context)
    if type(exc) is aiohttp.ClientResponseError:  # aiohttp's parser refused the answer
        return TransportError(f"the response could not be read {tries}: {exc.message}",
                              context=context)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        reason = "the server closed the connection without a response"
    elif isinstance(exc, aiohttp.ClientConnectorError | WireConnectError):
        why = exc.os_error.strerror or exc
        reason = (f"cannot resolve {exc.host} ({why})" if isinstance(exc.os_error, socket.gaierror)
                  else f"cannot connect to {exc.host}:{exc.port} ({why})")
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return TransportError(f"connection error {tries}: {reason}", context=context)
