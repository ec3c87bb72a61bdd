"""Retry budget: retries at most a fraction of first attempts over a sliding window.

Why: with 3 attempts a call, a total outage would triple the load on an upstream that
is already down. Counting first attempts and retries in time buckets (10 s buckets over
60 s by default) bounds the extra load to ``ratio`` of the offered load, while a small
floor (``min_retries`` a window) lets a quiet connector still retry a lone failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RetryBudget"]


class RetryBudget:
    """Sliding-window ratio of retries to first attempts for one connector.

    O(1) per event: counts live in a fixed ring of buckets; a bucket is zeroed when the
    clock moves onto it again.
    """

    __slots__ = ("_buckets", "_clock", "_firsts", "_min", "_ratio", "_retries", "_stamp",
                 "_width")

    def __init__(
        self,
        *,
        ratio: float = 0.1,
        min_retries: int = 10,
        window: float = 60.0,
        buckets: int = 6,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ratio = ratio
        self._min = min_retries
        self._width = window / buckets
        self._buckets = buckets
        self._clock = clock
        self._firsts = [0] * buckets
        self._retries = [0] * buckets
        self._stamp = [-1] * buckets  # which bucket number each slot currently counts

    def _slot(self) -> int:
        n = int(self._clock() // self._width)
        i = n % self._buckets
        if self._stamp[i] != n:
            self._stamp[i] = n
            self._firsts[i] = 0
            self._retries[i] = 0
        return i

    def _totals(self) -> tuple[int, int]:
        current = int(self._clock() // self._width)
        oldest = current - self._buckets + 1
        firsts = retries = 0
        for i in range(self._buckets):
            if self._stamp[i] >= oldest:
                firsts += self._firsts[i]
                retries += self._retries[i]
        return firsts, retries

    def record_first(self) -> None:
        self._firsts[self._slot()] += 1

    def try_retry(self) -> bool:
        """Take one retry from the budget; False (and nothing taken) when it is spent."""
        firsts, retries = self._totals()
        if retries >= max(self._min, int(firsts * self._ratio)):
            return False
        self._retries[self._slot()] += 1
        return True

    def snapshot(self) -> dict[str, int]:
        firsts, retries = self._totals()
        return {"first_attempts": firsts, "retries": retries,
                "allowed": max(self._min, int(firsts * self._ratio))}
