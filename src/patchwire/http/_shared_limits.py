"""Rate limits shared by every process using one store, without a round trip per call.

A bucket with declared limits leases a small batch of tokens from the store (one short
transaction, see ``store/_leases.py`` for why the sum over processes never exceeds the
limit in any window) and hands them out locally; only when the batch is spent, or has
expired, does it go back to the store, reporting in the same transaction how many tokens
it used and when it used the last, so the unused ones are free for others at once.

Batches are small (``limit // 20``, at least 1): a 10/second limit must not let one
process hoard the window while another waits. A lease lives at most a tenth of the
period (a second at most): until it is settled the store must assume its tokens may be
used right up to its expiry, so a short life keeps that assumption cheap.

Pauses: when the upstream answers 429 or ``X-RateLimit-Remaining: 0`` for a bucket with
declared limits, the bucket pauses locally at once and the pause is written to the store
in the background (:meth:`SharedQuota.publish_pause`, off the call path). Every lease
request names its bucket, and the store grants nothing for a paused bucket until the
pause ends, answering with its end: the other processes then hold their callers (or
fail them fast beyond the retry-after cap) exactly as the process that saw the 429 does.
Tokens another process leased before the pause was recorded stay usable until their
lease expires (a batch, for at most a second). Buckets without declared limits never
lease and so neither publish nor see shared pauses: each process learns of the pause
from its own first 429, which keeps their calls free of any store round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from patchwire.errors import PatchwireError
from patchwire.store import LeaseRequest, LeaseResult, Settlement, Window

__all__ = ["LeaseSource", "SharedLimits", "SharedQuota"]

log = logging.getLogger(__name__)

#: a lease holds at most 1/BATCH_DIVISOR of the smallest limit it draws from
BATCH_DIVISOR = 20
#: a lease expires after this fraction of the shortest period ...
TTL_FRACTION = 0.1
#: ... and never later than this many seconds after its grant
MAX_TTL = 1.0
#: longest wait for pauses still being written to the store (at shutdown)
PAUSE_WRITE_WAIT = 5.0


class LeaseSource(Protocol):
    """What the store offers (``patchwire.store.Store``)."""

    async def lease_rate_limit(self, req: LeaseRequest) -> LeaseResult: ...

    async def pause_rate_limit(self, bucket: str, until: float, now: float) -> None: ...

    async def settle_rate_limit_leases(self, holder: str,
                                       settle: Sequence[Settlement]) -> None: ...


class SharedLimits:
    """This process's side of the shared limits: its holder id and its quotas."""

    def __init__(self, store: LeaseSource, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, holder: str | None = None) -> None:
        self.store = store
        self.clock = clock
        # leases are compared across processes, so their times come from the wall clock
        # every process on the host shares, not from this process's monotonic one
        self.wall = wall
        self.holder = holder or uuid.uuid4().hex
        self._quotas: list[SharedQuota] = []
        #: pauses being written to the store
        self._pausing: set[asyncio.Task[None]] = set()

    def quota(self, bucket: str, limits: Sequence[tuple[int, float]]) -> SharedQuota:
        windows = tuple(Window(f"{bucket} {limit}/{period:g}s", limit, float(period))
                        for limit, period in limits)
        q = SharedQuota(self, bucket, windows)
        self._quotas.append(q)
        return q

    async def pauses_recorded(self) -> None:
        """Wait (at most PAUSE_WRITE_WAIT seconds) for the pauses being written."""
        if self._pausing:
            await asyncio.wait(self._pausing, timeout=PAUSE_WRITE_WAIT)

    async def close(self) -> None:
        """Stop leasing and give back the unused tokens (best effort: leases expire)."""
        await self.pauses_recorded()  # a pause recorded late is still worth recording
        settle: list[Settlement] = []
        for q in self._quotas:
            settle.extend(await q.stop())
        self._quotas.clear()
        if settle:
            try:
                await self.store.settle_rate_limit_leases(self.holder, settle)
            except PatchwireError as exc:
                log.warning("could not return unused rate-limit tokens: %s", exc)


class SharedQuota:
    """The tokens one bucket holds from the store, and the refill in flight."""

    __slots__ = (
        "_expires",
        "_last_used",
        "_lease_id",
        "_limits",
        "_published_until",
        "_refill",
        "_retry_at",
        "_settle",
        "_tokens",
        "_used",
        "batch",
        "bucket",
        "paused_until",
        "ttl",
        "windows",
    )

    def __init__(self, limits: SharedLimits, bucket: str, windows: tuple[Window, ...]
                 ) -> None:
        self._limits = limits
        self.bucket = bucket
        self.windows = windows
        #: monotonic end of a pause another process recorded (learnt at the last lease)
        self.paused_until = float("-inf")
        self._published_until = float("-inf")  # wall clock
        self.batch = max(1, min(w.limit for w in windows) // BATCH_DIVISOR)
        self.ttl = min(MAX_TTL, TTL_FRACTION * min(w.period for w in windows))
        self._lease_id: str | None = None
        self._tokens = 0
        self._used = 0
        self._last_used = 0.0
        self._expires = float("-inf")  # wall clock
        self._retry_at = float("-inf")  # monotonic: the store said nothing frees before
        self._settle: list[Settlement] = []  # finished leases not yet reported
        self._refill: asyncio.Future[None] | None = None

    @property
    def tokens(self) -> int:
        return self._tokens

    @property
    def refilling(self) -> asyncio.Future[None] | None:
        """The lease request in flight, if any (tests wait on it)."""
        return self._refill

    def take(self) -> bool:
        """Spend one leased token if one is held and its lease is still valid."""
        if self._tokens:
            now = self._limits.wall()
            if now < self._expires:
                self._tokens -= 1
                self._used += 1
                self._last_used = now
                return True
            self._tokens = 0  # expired: the store stops counting them once settled
        return False

    def ready_at(self) -> float:
        """Monotonic time a token may be had: -inf now, +inf while a lease is requested."""
        if self._refill is not None:
            return float("inf")
        if self._tokens:
            return float("-inf")
        return self._retry_at

    def publish_pause(self, seconds: float) -> None:
        """Record in the store, in the background, that the upstream wants this bucket
        paused for ``seconds``; other processes' lease requests then get nothing."""
        limits = self._limits
        now = limits.wall()
        until = now + seconds
        if until <= self._published_until:
            return  # already recorded (a burst of 429s records one pause)
        self._published_until = until
        task = asyncio.ensure_future(self._publish(until, now))
        limits._pausing.add(task)
        task.add_done_callback(limits._pausing.discard)

    async def _publish(self, until: float, now: float) -> None:
        try:
            await self._limits.store.pause_rate_limit(self.bucket, until, now)
        except Exception as exc:  # the local pause still holds this process
            self._published_until = float("-inf")
            log.warning("could not share the rate-limit pause of %s: %s", self.bucket, exc)

    def refill(self, want: int, on_ready: Callable[[], None],
               on_error: Callable[[BaseException], None]) -> None:
        """Ask the store for up to ``want`` tokens (capped at the batch) unless a request
        is already in flight; ``on_ready`` runs once tokens or a retry time are known."""
        if self._refill is not None or self._tokens:
            return
        self._close_lease()
        want = max(1, min(want, self.batch))
        self._refill = asyncio.ensure_future(self._lease(want, on_ready, on_error))

    def _close_lease(self) -> None:
        if self._lease_id is not None:
            self._settle.append(Settlement(self._lease_id, self._used, self._last_used))
            self._lease_id = None
        self._tokens = self._used = 0

    async def _lease(self, want: int, on_ready: Callable[[], None],
                     on_error: Callable[[BaseException], None]) -> None:
        limits = self._limits
        settle = tuple(self._settle)
        lease_id = uuid.uuid4().hex
        # taken before the transaction waits for its lock: no use precedes the grant time
        now = limits.wall()
        req = LeaseRequest(self.windows, limits.holder, lease_id, want, now, self.ttl,
                           settle, pause=self.bucket)
        try:
            granted, retry_at, paused_until = await limits.store.lease_rate_limit(req)
        except Exception as exc:
            self._refill = None
            on_error(exc)
            return
        self._refill = None
        del self._settle[: len(settle)]
        if granted:
            self._lease_id = lease_id
            self._tokens = granted
            self._expires = now + self.ttl
        else:
            wall = limits.wall()
            self._retry_at = limits.clock() + max(0.0, retry_at - wall)
            if paused_until > wall:
                self.paused_until = limits.clock() + (paused_until - wall)
        on_ready()

    async def stop(self) -> list[Settlement]:
        """Cancel a lease request in flight; return what is left to settle."""
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refill
            self._refill = None
        self._close_lease()
        settle, self._settle = self._settle, []
        return settle
