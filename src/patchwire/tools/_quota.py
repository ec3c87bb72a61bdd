"""The per-end-user tool-call quota (``end_user_tool_calls = "100/minute"``).

It holds across every process sharing the store the same way connectors' declared rate
limits do: each end user's quota is a :class:`~patchwire.http.SharedQuota` that leases a
small batch of calls from the store's rate-limit leases (``store/_leases.py`` proves no
window ever sees more than the limit, whatever the number of processes) and hands them out
locally, so a call costs a store round trip only once per batch. Nothing here waits for
room: a model told "try again in 12 s" can tell the user, where a call held for a minute
would look hung.

Memory stays bounded with many end users: the quotas of the most recently active ones are
kept (least recently used dropped first); a dropped quota's lease is settled in the
background, so its unused calls are free for others at once rather than when it expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from patchwire.errors import PatchwireError
from patchwire.http import SharedLimits, SharedQuota
from patchwire.store import Store, Window

__all__ = ["EndUserQuota"]

log = logging.getLogger("patchwire.tools")

#: end users whose quotas are kept in memory at once
MAX_KEPT = 10_000
#: lease requests one admission makes at most (each grants or says when one frees)
_MAX_LEASES = 4


class EndUserQuota:
    """At most ``limits`` tool calls (``(calls, period seconds)`` pairs) per end user."""

    def __init__(self, store: Callable[[], Store], limits: Sequence[tuple[int, float]], *,
                 max_kept: int = MAX_KEPT, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        if not limits:
            raise ValueError("a quota needs at least one limit")
        self._store = store
        self.limits = tuple(limits)
        self._max_kept = max_kept
        self._clock = clock
        self._wall = wall
        self._shared: SharedLimits | None = None
        self._quotas: OrderedDict[str, SharedQuota] = OrderedDict()
        self._settling: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._quotas)

    def _limits(self) -> SharedLimits:
        store = self._store()
        if self._shared is None or self._shared.store is not store:
            # the store was reopened: leases held under the old one are gone with it
            self._shared = SharedLimits(store, clock=self._clock, wall=self._wall)
            self._quotas.clear()
        return self._shared

    def _quota(self, end_user: str) -> SharedQuota:
        shared = self._limits()
        quota = self._quotas.get(end_user)
        if quota is not None:
            self._quotas.move_to_end(end_user)
            return quota
        # The bucket names the end user: the store counts their calls under that key only.
        bucket = f"tool-calls end_user:{end_user}"
        windows = tuple(Window(f"{bucket} {limit}/{period:g}s", limit, float(period))
                        for limit, period in self.limits)
        # Made directly, not through shared.quota(), which keeps every quota for ever:
        # this cache is what keeps them, and drops the least recently used.
        quota = self._quotas[end_user] = SharedQuota(shared, bucket, windows)
        while len(self._quotas) > self._max_kept:
            _, dropped = self._quotas.popitem(last=False)
            self._settle(shared, dropped)
        return quota

    def _settle(self, shared: SharedLimits, quota: SharedQuota) -> None:
        async def settle() -> None:
            try:
                leftovers = await quota.stop()
                if leftovers:
                    await shared.store.settle_rate_limit_leases(shared.holder, leftovers)
            except PatchwireError as exc:  # the lease expires by itself within a second
                log.warning("could not return an end user's unused tool calls: %s", exc)

        task = asyncio.ensure_future(settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def admit(self, end_user: str) -> float | None:
        """None when ``end_user`` may make one more tool call now (it is counted), else
        the seconds until one is allowed. Raises the store's error when it cannot say."""
        quota = self._quota(end_user)
        for _ in range(_MAX_LEASES):
            if quota.take():
                return None
            pending = quota.refilling
            if pending is None:
                free_at = quota.ready_at()
                now = self._clock()
                if free_at > now:
                    return free_at - now
                failure: list[BaseException] = []
                quota.refill(quota.batch, lambda: None, failure.append)
                pending = quota.refilling
                if pending is None:  # answered at once (it only fails that way)
                    if failure:
                        raise failure[0]
                    continue
                await asyncio.shield(pending)
                if failure:
                    raise failure[0]
            else:  # another call of this end user is asking the store: share its answer
                await asyncio.shield(pending)
        if quota.take():
            return None
        # The leases granted went to this end user's other calls in flight.
        return max(quota.ready_at() - self._clock(), min(period for _, period in self.limits)
                   / max(limit for limit, _ in self.limits))

    async def close(self) -> None:
        """Give unused leased calls back (best effort: leases expire within a second)."""
        if self._settling:
            await asyncio.wait(self._settling, timeout=5.0)
        shared, self._shared = self._shared, None
        if shared is None:
            return
        leftovers = []
        for quota in self._quotas.values():
            leftovers.extend(await quota.stop())
        self._quotas.clear()
        if leftovers:
            try:
                await shared.store.settle_rate_limit_leases(shared.holder, leftovers)
            except PatchwireError as exc:
                log.warning("could not return end users' unused tool calls: %s", exc)
