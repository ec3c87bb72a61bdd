"""Fake time: a clock that moves only when the test says so, and a timer wheel on it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: bound on waiting for a timer to be armed
ARMED_WAIT_S = 5.0


class FakeClock:
    """Seconds (monotonic or epoch: the caller's choice of ``now``) that move only when a
    test calls ``advance``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Timer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeTimers:
    """``call_later`` on a fake clock: ``fire_next()`` fires the next due timer, moving the
    clock to its time."""

    clock: FakeClock
    _heap: list[tuple[float, int, _Timer]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    armed: int = 0

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        t = _Timer(self.clock.now + delay, callback)
        heapq.heappush(self._heap, (t.when, next(self._seq), t))
        self.armed += 1
        return t

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def fire_next(self) -> bool:
        due = self.next_due()
        if due is None:
            return False
        _, _, t = heapq.heappop(self._heap)
        self.clock.now = max(self.clock.now, due)
        t.callback()
        return True


@dataclass
class SignallingTimers(FakeTimers):
    """Fake timers that say when one is armed: a caller started waiting for a slot."""

    armed_one: asyncio.Event = field(default_factory=asyncio.Event)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        self.armed_one.set()
        return super().call_later(delay, callback)

    async def next_armed(self) -> None:
        """Until a timer is armed (bounded by ``ARMED_WAIT_S``); then listen for the next."""
        await asyncio.wait_for(self.armed_one.wait(), ARMED_WAIT_S)
        self.armed_one.clear()
