"""Driving rate-limit buckets on fake time: callers arriving at chosen instants on several
buckets (one per process sharing a limit through the store), and the most grants any
window of a period holds."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence

from patchwire.http import Bucket
from tests.support.clocks import FakeClock, FakeTimers

#: bound on any single wait for the store
STORE_WAIT = 30.0


def worst_window(times: list[float], period: float) -> int:
    """Most grants in any half-open window [t, t + period)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + period) - i for i, t in enumerate(times)),
               default=0)


async def settle_refills(buckets: Sequence[Bucket]) -> None:
    """Let every lease request in flight finish (the fake clock stands still meanwhile)."""
    while True:
        for _ in range(3):
            await asyncio.sleep(0)
        pending = [b.shared.refilling for b in buckets
                   if b.shared is not None and b.shared.refilling is not None]
        if not pending:
            return
        await asyncio.wait_for(asyncio.gather(*pending), STORE_WAIT)


async def drive_shared(buckets: Sequence[Bucket], timers: FakeTimers, clock: FakeClock,
                       arrivals: list[tuple[float, int]]) -> list[tuple[int, int, float]]:
    """Callers arrive at fake times on bucket ``b``; returns (bucket, caller, grant time)."""
    granted: list[tuple[int, int, float]] = []
    tasks: list[asyncio.Task[None]] = []

    async def caller(b: int, i: int) -> None:
        await buckets[b].acquire()
        granted.append((b, i, clock.now))

    for i, (at, b) in enumerate(sorted(arrivals)):
        while (due := timers.next_due()) is not None and due <= at:
            timers.fire_next()
            await settle_refills(buckets)
        clock.now = max(clock.now, at)
        tasks.append(asyncio.ensure_future(caller(b, i)))
        await settle_refills(buckets)
    while not all(t.done() for t in tasks):
        assert timers.fire_next(), "callers wait with no timer armed and no lease asked"
        await settle_refills(buckets)
    return granted
