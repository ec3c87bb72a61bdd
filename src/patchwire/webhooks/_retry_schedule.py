"""When a failed webhook delivery is tried again: the schedule, its jitter, how far a
receiver's ``Retry-After`` may push it, and when a failing endpoint is given up on."""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["DISABLE_AFTER_FAILING_S", "RETRY_AFTER_CAP_S", "RETRY_JITTER", "RETRY_SCHEDULE",
           "retry_delay"]

#: seconds to wait before each attempt of a delivery: the first goes at once, then 5 s,
#: 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after the previous failure (8 attempts, about
#: 27.6 hours; the schedule Svix publishes)
RETRY_SCHEDULE: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18_000.0, 36_000.0,
                                     36_000.0)
#: each wait is drawn uniformly from ±this fraction around its step, so endpoints that
#: failed together (an outage) are not all retried in the same second
RETRY_JITTER = 0.2
#: ``Retry-After`` is honoured up to this many seconds (a receiver cannot park a delivery
#: for a year)
RETRY_AFTER_CAP_S = 36_000.0
#: an endpoint failing this long without a success is disabled
DISABLE_AFTER_FAILING_S = 5 * 86_400.0


def retry_delay(tries: int, rng: random.Random, *, retry_after: float | None = None,
                schedule: Sequence[float] = RETRY_SCHEDULE,
                jitter: float = RETRY_JITTER) -> float | None:
    """Seconds before the next attempt after ``tries`` attempts failed, or ``None`` when the
    schedule is exhausted. A ``Retry-After`` longer than the drawn wait wins (capped)."""
    if tries >= len(schedule):
        return None
    delay = schedule[tries] * rng.uniform(1.0 - jitter, 1.0 + jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
    return delay
