"""A clock that moves only when the test moves it."""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock"]


class FakeClock:
    """Seconds that move only when a test calls :meth:`advance` (or :meth:`sleep`).

    Pass it wherever Patchwire takes ``clock: Callable[[], float]``: the HTTP core, the
    circuit breaker, the retry budget, the rate limiters, the flow engine, the OAuth2 token
    keeper, ... It reads as monotonic or as epoch seconds alike, whichever ``start`` is.
    ``sleep`` is a drop-in for the ``sleep=`` callables (the HTTP core's backoff): it moves
    the clock by the delay instead of waiting, and lets other tasks run once.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Moves the clock ``seconds`` forward and returns the new time; time never runs
        backwards, so a negative ``seconds`` is a ValueError."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        self._now += seconds
        return self._now

    async def sleep(self, seconds: float) -> None:
        """As ``asyncio.sleep``, but the clock jumps instead of the test waiting."""
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"
