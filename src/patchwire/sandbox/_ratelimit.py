"""Fixed-window, per-credential rate limiting with the usual X-RateLimit-* headers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

WINDOW_S = 60


@dataclass(slots=True)
class RateDecision:
    limit: int
    remaining: int
    reset_epoch: int
    retry_after: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch),
        }


class RateLimiter:
    """Counts requests per key in aligned one-minute windows.

    Aligned windows make ``X-RateLimit-Reset`` (epoch seconds) the same for every key,
    which is what GitHub-style clients expect, and cost one dict lookup per request.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[Hashable, list[int]] = {}

    def reset(self) -> None:
        self._windows.clear()

    def hit(self, key: Hashable, limit: int) -> RateDecision:
        now = self._clock()
        window = int(now // WINDOW_S)
        slot = self._windows.get(key)
        if slot is None or slot[0] != window:
            slot = [window, 0]
            self._windows[key] = slot
        reset_at = (window + 1) * WINDOW_S
        if slot[1] >= limit:
            return RateDecision(limit, 0, reset_at, max(1, math.ceil(reset_at - now)), False)
        slot[1] += 1
        return RateDecision(limit, limit - slot[1], reset_at, 0, True)
