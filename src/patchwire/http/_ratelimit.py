"""Client-side rate limits: exact sliding windows with a FIFO queue of waiters.

Why a sliding log rather than a token bucket: a bucket of N tokens refilled at N/period
lets 2N requests through in some window of one period (a full bucket, then the refill),
which is exactly what an upstream counting a rolling window punishes. Remembering the
time of each of the last N grants means a request is let through only when the N-th
most recent one is a full period old, so no window of ``period`` seconds ever holds more
than N grants. Memory is one float per allowed request per period.

Waiting is first come, first served with O(1) wake-ups: callers that cannot go at once
queue a future; one timer per bucket fires when the next slot frees and resolves as many
futures as there are free slots. No caller polls or sleeps on its own.

When the store is shared (:meth:`RateLimiters.share`), a bucket with declared limits also
needs a token leased from the store (``_shared_limits.py``) for each grant: the local
windows keep this process exact, the leases keep all processes together within the limit.
Such a bucket also shares the upstream's pauses: a pause this process sees is recorded in
the store, and one another process recorded comes back with the next lease request
(see ``_shared_limits.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from patchwire.connectors.spec import RateLimit
from patchwire.http._shared_limits import LeaseSource, SharedLimits, SharedQuota

__all__ = ["Bucket", "RateLimiters", "SlidingWindow", "end_user_bucket"]


class _Handle(Protocol):
    def cancel(self) -> None: ...


#: schedules a callback after a delay (``loop.call_later``; a fake one in tests)
CallLater = Callable[[float, Callable[[], None]], _Handle]


def _loop_call_later(delay: float, callback: Callable[[], None]) -> _Handle:
    return asyncio.get_running_loop().call_later(delay, callback)


class SlidingWindow:
    """At most ``limit`` grants in any ``period`` seconds."""

    __slots__ = ("_log", "limit", "period")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._log: deque[float] = deque(maxlen=limit)

    def free_at(self) -> float:
        """Earliest time the next grant is allowed (any time <= now means now)."""
        log = self._log
        if len(log) < self.limit:
            return float("-inf")
        return log[0] + self.period

    def take(self, now: float) -> None:
        self._log.append(now)  # maxlen drops the oldest, which is a full period old


class Bucket:
    """One rate-limited key (a connector, or a connector's connection).

    Holds its windows, a pause set by the upstream (429, ``X-RateLimit-Remaining: 0``)
    and the queue of callers waiting for a slot.
    """

    __slots__ = ("_call_later", "_clock", "_timer", "_waiters", "name", "paused_until",
                 "shared", "windows")

    def __init__(
        self, name: str, windows: Sequence[SlidingWindow], *,
        clock: Callable[[], float] = time.monotonic, call_later: CallLater = _loop_call_later,
    ) -> None:
        self.name = name
        self.windows = tuple(windows)
        self.paused_until = float("-inf")
        self._clock = clock
        self._call_later = call_later
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: _Handle | None = None
        #: tokens leased from the store when processes share the limit
        self.shared: SharedQuota | None = None

    def free_at(self) -> float:
        """When this process's own windows and pause next allow a grant."""
        at = self.paused_until
        for w in self.windows:
            f = w.free_at()
            if f > at:
                at = f
        return at

    def try_take(self) -> bool:
        """Take a slot now if one is free and nobody is queued ahead (the fast path)."""
        if self._waiters:
            return False
        now = self._clock()
        if self.free_at() > now:
            return False
        shared = self.shared
        if shared is not None and not shared.take():
            return False
        for w in self.windows:
            w.take(now)
        return True

    async def acquire(self) -> None:
        if self.try_take():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._arm()
        try:
            await fut
        except asyncio.CancelledError:
            # A slot granted just as we were cancelled stays spent: under-using a limit
            # is harmless, handing the slot on could break FIFO order.
            self._arm()
            raise

    def pause(self, seconds: float) -> None:
        """Hold every caller of this bucket for ``seconds`` (the upstream said so)."""
        until = self._clock() + seconds
        if until > self.paused_until:
            self.paused_until = until
            if self.shared is not None:
                self.shared.publish_pause(seconds)
            if self._waiters:
                self._reschedule()

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def _arm(self) -> None:
        if self._timer is None:
            self._reschedule()

    def _reschedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()  # cancelled callers
        if not self._waiters:
            return
        at = self.free_at()
        if self.shared is not None:
            # +inf while a lease request is in flight: its completion reschedules
            at = max(at, self.shared.ready_at())
        if at == float("inf"):
            return
        delay = max(0.0, at - self._clock())
        self._timer = self._call_later(delay, self._release)

    def _release(self) -> None:
        self._timer = None
        waiters = self._waiters
        while waiters:
            head = waiters[0]
            if head.done():
                waiters.popleft()
                continue
            now = self._clock()
            if self.free_at() > now:
                break
            shared = self.shared
            if shared is not None and not shared.take():
                if shared.ready_at() <= now:
                    shared.refill(len(waiters), self._lease_answered, self._fail)
                break
            for w in self.windows:
                w.take(now)
            waiters.popleft().set_result(None)
        self._reschedule()

    def _lease_answered(self) -> None:
        """The store answered a lease request; a pause it reported holds this bucket too
        (so later callers fail fast when it outlasts their wait cap)."""
        shared = self.shared
        if shared is not None and shared.paused_until > self.paused_until:
            self.paused_until = shared.paused_until
        self._reschedule()

    def _fail(self, exc: BaseException) -> None:
        """The store could not lease tokens: the callers waiting for one get the error
        (failing closed: going ahead could break the shared limit)."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)


#: what a bucket key's middle part is for an end user's bucket: no connection name has it
#: (names are letters, digits, ``._-``), so an end user's bucket never meets a connection's
_END_USER = "@end_user:"


class RateLimiters:
    """The buckets of every connector, end user and connection, created on first use.

    A call takes a slot from its connection's bucket (always present, so an upstream's
    429 can pause it even when no limit is declared); when the connector declares
    ``scope: connector`` limits, from the connector's bucket too; and when it declares
    ``scope: end_user`` limits, from its connection's end user's bucket (one for all the
    connections of that end user to the connector). A connection of no end user takes
    ``end_user`` limits in its own bucket.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 call_later: CallLater = _loop_call_later) -> None:
        self._clock = clock
        self._call_later = call_later
        self._buckets: dict[tuple[str, str | None], Bucket] = {}
        self._shared: SharedLimits | None = None

    def bucket(self, connector: str, connection: str | None,
               limits: Sequence[RateLimit] = (), *, own_end_user_limits: bool = False
               ) -> Bucket:
        """The bucket of ``connector`` (``connection`` None), of one of its connections,
        or of an end user (``connection`` = :func:`end_user_bucket`); it takes the
        ``limits`` of its scope (``own_end_user_limits``: a connection of no end user
        takes the ``end_user`` ones too)."""
        key = (connector, connection)
        b = self._buckets.get(key)
        if b is None:
            if connection is None:
                scopes: tuple[str, ...] = ("connector",)
            elif connection.startswith(_END_USER):
                scopes = ("end_user",)
            else:
                scopes = ("connection", "end_user") if own_end_user_limits else (
                    "connection",)
            windows = [SlidingWindow(r.limit, r.period_seconds) for r in limits
                       if r.scope in scopes]
            name = f"{connector}/{connection}" if connection is not None else connector
            b = self._buckets[key] = Bucket(name, windows, clock=self._clock,
                                            call_later=self._call_later)
            self._attach(b)
        return b

    def share(self, store: LeaseSource, *, wall: Callable[[], float] = time.time,
              holder: str | None = None) -> SharedLimits:
        """Hold declared limits together with every other process using ``store``.

        Buckets without declared limits (kept only so a 429 can pause them) never touch
        the store.
        """
        self._shared = SharedLimits(store, clock=self._clock, wall=wall, holder=holder)
        for b in self._buckets.values():
            self._attach(b)
        return self._shared

    async def unshare(self) -> None:
        """Stop sharing (before the store closes) and return unused leased tokens."""
        shared, self._shared = self._shared, None
        for b in self._buckets.values():
            b.shared = None
        if shared is not None:
            await shared.close()

    def _attach(self, b: Bucket) -> None:
        if self._shared is not None and b.windows:
            b.shared = self._shared.quota(b.name, [(w.limit, w.period) for w in b.windows])

    def plan(self, connector: str, limits: Sequence[RateLimit], connection: str,
             end_user: str | None = None) -> tuple[Bucket, ...]:
        """The buckets a call through ``connection`` (of ``end_user``) must pass, the
        connection's own last (callers cache it)."""
        per_end_user = any(r.scope == "end_user" for r in limits)
        buckets = [self.bucket(connector, connection, limits,
                               own_end_user_limits=end_user is None)]
        if per_end_user and end_user is not None:
            buckets.insert(0, self.bucket(connector, end_user_bucket(end_user), limits))
        if any(r.scope == "connector" for r in limits):
            buckets.insert(0, self.bucket(connector, None, limits))
        return tuple(buckets)

    def drop(self, connector: str) -> None:
        """Forget a connector's buckets (its declared limits changed)."""
        for key in [k for k in self._buckets if k[0] == connector]:
            del self._buckets[key]


def end_user_bucket(end_user: str) -> str:
    """The key, among a connector's connections, of an end user's bucket."""
    return _END_USER + end_user
