"""The HTTP core: every upstream request, with timeouts, retries, rate limits, a
concurrency cap and a circuit breaker, and typed errors. Nothing else in Patchwire talks
HTTP to an upstream (webhook deliveries send through :meth:`HttpCore.exchange`).

aiohttp rather than httpx: docs/architecture.md records httpx's default transport at a fraction of
aiohttp's throughput on these machines, and the call path must stay within 15% of a raw
aiohttp loop. So the per-call work here is kept to dict lookups and counters: no store
round trip and no per-call objects beyond the response, and ordinary requests skip the
session's per-request machinery on kept-alive HTTP/1.1 connections of our own
(``_wire.py``: same SSRF guard, timeouts and error types; ``wire=False`` turns it off).
Requests go through a :class:`~patchwire.http.Transport` (``_transport.py``): the default
one picks the wire or aiohttp by one rule, or one is injected (``transport=``, e.g. a
:class:`~patchwire.http.MockTransport`). The core follows redirects itself, hop by hop
through the transport, and maps every transport's failures to Patchwire's errors here.
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
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver
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
from patchwire.http._default_transport import DefaultTransport
from patchwire.http._guard import ConnectorGuard, HeldSlot, SharedSlots, SlotSource
from patchwire.http._ratelimit import Bucket, CallLater, RateLimiters
from patchwire.http._retry import (
    RetryDecision,
    backoff_delay,
    is_transient_status,
    retries_are_instant,
    server_delay,
)
from patchwire.http._ssrf import DestinationPolicy, DestinationRefused
from patchwire.http._transport import (
    REDIRECTS,
    Limits,
    PreparedRequest,
    RawResponse,
    Transport,
    bad_status,
    body_too_large,
)
from patchwire.http._wire import WireConnectError
from patchwire.observability import observe_rate_limit_wait
from patchwire.observability import tracing as _tracing

__all__ = ["HttpCore", "TooManyRedirects"]

_RETRYABLE_TRANSPORT = (aiohttp.ClientConnectionError, asyncio.TimeoutError)
#: a chain's 10th redirect answer fails the request (aiohttp's ``max_redirects``)
MAX_REDIRECTS = 10

#: polling for a concurrency slot in the store backs off from the first delay, doubling up
#: to the second: a slot frees when some call ends, which no process is told about
SLOT_POLL_FIRST = 0.005
SLOT_POLL_MAX = 0.1
#: a store slot outlives its attempt's total timeout by this much before another process
#: may take it over (the holder died): room for a stalled loop, the release's round trip
#: and clock differences between hosts
SLOT_EXPIRY_MARGIN = 10.0


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
        transport: Transport | None = None,
    ) -> None:
        """``allow_networks``: CIDRs and host names the SSRF guard admits besides public
        addresses (see ``http/_ssrf.py``). ``resolver`` replaces the DNS lookup under the
        guard (tests). ``call_later`` schedules the rate limiters' wake-ups (a fake timer
        wheel in tests, with a fake ``clock``). ``wire=False`` sends every request through
        the aiohttp session (the reference path ``bench/call_overhead.py`` compares).
        ``transport`` replaces the default one (the wire and aiohttp, guarded by
        ``allow_networks``) for every request; the core closes it with itself."""
        self.destinations = DestinationPolicy.from_allow_list(allow_networks)
        self._default: DefaultTransport | None = None
        if transport is None:
            transport = self._default = DefaultTransport(self.destinations, limit=limit,
                                                         resolver=resolver, wire=wire)
        self.transport: Transport = transport
        # keyed by identity: hashing a pydantic model on every call costs more than the call
        self._limits: dict[int, tuple[Timeouts, dict[int | None, Limits]]] = {}
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

    @property
    def wire(self) -> bool:
        """Whether ordinary requests take the kept-alive wire (default transport only)."""
        return self._default is not None and self._default.use_wire

    @wire.setter
    def wire(self, on: bool) -> None:
        if self._default is not None:
            self._default.use_wire = on

    async def close(self) -> None:
        await self.transport.aclose()

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

    def limits(self, t: Timeouts, max_body: int | None = None) -> Limits:
        """The :class:`Limits` of an attempt under ``t`` reading at most ``max_body``
        bytes (made once per pair, then looked up)."""
        entry = self._limits.get(id(t))
        if entry is not None and entry[0] is t:
            made = entry[1].get(max_body)
            if made is not None:
                return made
        else:
            entry = self._limits[id(t)] = (t, {})  # holding t keeps its id from being reused
        # A read timeout no shorter than the total one can never fire first, and aiohttp
        # re-arms it on every chunk received: leave it out then.
        made = entry[1][max_body] = Limits(aiohttp.ClientTimeout(
            total=t.total, connect=t.connect, sock_read=t.read if t.read < t.total else None
        ), max_body)
        return made

    # -- per-connector state ---------------------------------------------------------------

    def pause(self, spec: ConnectorSpec, connection: str, end_user: str | None,
              seconds: float) -> None:
        """The upstream said in its answer's body that this connection's budget is spent
        (a GraphQL cost rule): hold its next calls as after a 429."""
        if seconds > 0 and not retries_are_instant():  # the testing setting: no waiting
            self.guard(spec).buckets(connection, end_user)[-1].pause(seconds)

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
        end_user: str | None = None,
    ) -> RawResponse:
        """One logical request. Without ``connector`` only retries apply (no limits,
        breaker or budget), which is what one-off requests like token exchanges want.
        ``end_user``: the connection's, whose bucket takes ``per end_user`` limits."""
        guard = self.guard(connector) if connector is not None else None
        limits = self.limits(timeouts, connector.max_response_bytes
                             if connector is not None else None)
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
                plan = guard.buckets(connection, end_user)
                # fast path without a coroutine: closed breaker, one bucket with a slot free
                if not (guard.breaker.state == "closed" and len(plan) == 1
                        and plan[0].try_take()):
                    await self._admit(guard, plan, retry, context, decision)
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
                            response = await self._attempt(req, limits, context,
                                                           decision.attempts)
                        else:
                            response = await self._attempt_in_slot(
                                slots, guard.spec, req, limits, timeouts, context, decision)
                    finally:
                        semaphore.release()
                else:
                    response = await self._attempt(req, limits, context, decision.attempts)
            except _RETRYABLE_TRANSPORT as exc:
                if guard is not None:
                    guard.breaker.record(False)
                if self._may_retry(retryable, retry, decision, guard):
                    await self._wait(backoff_delay(retry, decision.attempts, self._rng),
                                     decision)
                    continue
                raise map_transport_error(exc, _timeout_words(timeouts), context,
                                          _tries(decision)) from exc
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
                raise map_transport_error(exc, _timeout_words(timeouts), context,
                                          _tries(decision)) from exc
            except BaseException:
                if guard is not None:
                    guard.breaker.release_probe()
                raise
            status = response.status
            transient = is_transient_status(status, retry, idempotent=retryable)
            if guard is not None:
                # 429 and other 4xx say nothing about the upstream's health
                guard.breaker.record_status(status, transient=transient)
                self._note_limits(guard.buckets(connection, end_user), response, retry)
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

    async def _admit(self, guard: ConnectorGuard, plan: tuple[Bucket, ...], retry: RetryPolicy,
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
            for bucket in plan:
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
        self, slots: SharedSlots, spec: ConnectorSpec, req: PreparedRequest, limits: Limits,
        timeouts: Timeouts, context: CallContext, decision: RetryDecision,
    ) -> RawResponse:
        """One attempt holding a slot of the connector's cap in the store. The local
        semaphore is already held, so this process queues its own callers in order and
        only as many as the cap ever poll the store."""
        held = await self._take_slot(slots, spec, timeouts, context, decision)
        try:
            return await self._attempt(req, limits, context, decision.attempts)
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

    def _note_limits(self, plan: tuple[Bucket, ...],
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
            plan[-1].pause(delay)

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

    async def exchange(self, req: PreparedRequest, limits: Limits, *,
                       context: CallContext | None = None,
                       follow_redirects: bool = True) -> RawResponse:
        """One request, one attempt: no retries, limits, breaker or budget, the same
        transport, SSRF guard, checks and error mapping as :meth:`send` (failures are
        :class:`~patchwire.errors.TransportError`, ``CallTimeoutError`` or
        ``BlockedDestinationError``). Webhook deliveries send this way: their retries are
        their own schedule. Without ``follow_redirects`` a 3xx is the answer."""
        context = context or CallContext(url=req.url)
        try:
            return await self._exchange(req, limits, follow_redirects)
        except DestinationRefused as exc:
            raise BlockedDestinationError(
                str(exc), host=exc.host, address=exc.address, reason=exc.reason,
                context=context,
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            t = limits.timeout
            words = _timeout_words_of(t.connect, t.sock_read, t.total)
            raise map_transport_error(exc, words, context, "") from exc

    async def _attempt(self, req: PreparedRequest, limits: Limits,
                       context: CallContext | None = None, attempt: int = 1) -> RawResponse:
        # observability: a span per attempt and its traceparent header, only when tracing
        # is on (off, this costs one attribute check)
        span = _tracing.start_attempt(req, context, attempt) if _tracing.active else None
        try:
            # (_exchange inlined: one coroutine less per call on the hot path)
            started = time.monotonic()
            raw = _checked(await self.transport.handle(req, limits), limits)
            if raw.status in REDIRECTS:
                raw = await self._follow_redirects(req, raw, limits, started)
        except BaseException as exc:
            if span is not None:
                _tracing.attempt_failed(span, exc)
            raise
        if span is not None:
            _tracing.attempt_finished(span, raw.status)
        return raw

    async def _exchange(self, req: PreparedRequest, limits: Limits,
                        follow_redirects: bool) -> RawResponse:
        """The request through the transport, its redirects followed; the answer checked
        against the limits whatever the transport (the built-in ones enforce them as they
        read; an injected one may not)."""
        started = time.monotonic()
        raw = _checked(await self.transport.handle(req, limits), limits)
        if raw.status in REDIRECTS and follow_redirects:
            raw = await self._follow_redirects(req, raw, limits, started)
        return raw

    async def _follow_redirects(self, req: PreparedRequest, response: RawResponse,
                                limits: Limits, started: float) -> RawResponse:
        """The rest of a redirect chain, hop by hop through the transport (whose SSRF
        guard checks every new connection), with aiohttp's rules for a hop: 303 (and
        301/302 after a POST) become a GET without body; leaving the origin drops
        credentials (the connection's own headers and cookies too); the total timeout
        covers the whole chain; the 10th redirect fails the request."""
        redirects = 0
        while response.status in REDIRECTS:
            location = response.headers.get("Location") or response.headers.get("URI")
            if location is None:
                return response
            redirects += 1
            if redirects >= MAX_REDIRECTS:
                raise TooManyRedirects(f"{MAX_REDIRECTS} redirects in a row, the last to "
                                       f"{location[:200]}")
            req = _next_hop(req, response.status, location)
            total = limits.timeout.total
            if total is not None:  # the total covers the whole chain
                left = total - (time.monotonic() - started)
                if left <= 0:
                    raise TimeoutError
                hop_limits = limits.within(left)
            else:
                hop_limits = limits
            response = _checked(await self.transport.handle(req, hop_limits), limits)
        return response

    async def _wait(self, delay: float, decision: RetryDecision) -> float:
        """Back off ``delay`` seconds before a retry; returns the seconds slept (0 under
        the instant-retries testing setting)."""
        decision.retries += 1
        decision.waited += delay
        if delay > 0 and not retries_are_instant():
            await self._sleep(delay)
            return delay
        return 0.0


class TooManyRedirects(aiohttp.ClientError):
    """A redirect chain longer than the core follows."""


#: headers aiohttp drops when a redirect leaves the origin
_ORIGIN_BOUND = frozenset({"authorization", "cookie", "proxy-authorization"})


def _checked(raw: RawResponse, limits: Limits) -> RawResponse:
    """``raw``, unless its status is outside 100-599 or its body is longer than the limit
    (which then fails the exchange, or is cut to it with ``limits.truncate``)."""
    if not 100 <= raw.status <= 599:
        raise aiohttp.ClientPayloadError(f"malformed HTTP response: {bad_status(raw.status)}")
    max_body = limits.max_body
    if max_body is not None and len(raw.body) > max_body:
        if not limits.truncate:
            raise body_too_large(max_body)
        raw.body = raw.body[:max_body]
    return raw


def _next_hop(req: PreparedRequest, status: int, location: str) -> PreparedRequest:
    """The request a redirect answer (``status``, ``location``) to ``req`` asks for."""
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
    method, data, json = req.method, req.data, req.json
    headers = dict(req.headers)
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, data, json = "GET", None, None
        for name in [k for k in headers if k.lower() == "content-length"]:
            del headers[name]
    credentials, cookies, tls = req.credentials, req.cookies, req.tls
    if url.origin() != target.origin():
        for name in [k for k in headers if k.lower() in _ORIGIN_BOUND
                     or k.lower() in credentials]:
            del headers[name]
        credentials, cookies = frozenset(), None  # gone for the rest of the chain
        tls = None  # the client certificate is presented to the connection's origin only
    return PreparedRequest(method, str(target), headers, None, cookies, json, data,
                           req.idempotent, credentials, tls)


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


def _tries(decision: RetryDecision) -> str:
    tries = f" after {decision.attempts} attempt{'s' if decision.attempts != 1 else ''}"
    if decision.stopped:
        tries += f" ({decision.stopped})"
    return tries


def _timeout_words(t: Timeouts) -> str:
    return _timeout_words_of(t.connect, t.read, t.total)


def _timeout_words_of(connect: float | None, read: float | None, total: float | None) -> str:
    parts = [f"{name} {value:g}s" for name, value in
             (("connect", connect), ("read", read), ("total", total)) if value is not None]
    return ", ".join(parts)


def map_transport_error(exc: BaseException, timeout_words: str, context: CallContext,
                        tries: str) -> Exception:
    """The Patchwire error for a transport's failure ``exc`` (whichever transport): the one
    error mapping of every HTTP request. ``tries`` (" after 2 attempts") ends the
    sentence; ``timeout_words`` names the timeouts that applied."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return CallTimeoutError(
            f"no complete response within the timeout ({timeout_words}){tries}",
            context=context,
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError(f"the response could not be read{tries}: {exc}",
                              context=context)
    if type(exc) is aiohttp.ClientResponseError:  # aiohttp's parser refused the answer
        return TransportError(f"the response could not be read{tries}: {exc.message}",
                              context=context)
    if isinstance(exc, TooManyRedirects):
        return TransportError(f"the upstream redirected too often{tries}: {exc}",
                              context=context)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        reason = "the server closed the connection without a response"
    elif isinstance(exc, aiohttp.ClientConnectorError | WireConnectError):
        why = exc.os_error.strerror or exc
        reason = (f"cannot resolve {exc.host} ({why})" if isinstance(exc.os_error, socket.gaierror)
                  else f"cannot connect to {exc.host}:{exc.port} ({why})")
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return TransportError(f"connection error{tries}: {reason}", context=context)
