"""Per-connector resilience state: breaker, retry budget, concurrency cap, rate buckets.

Built once per connector spec and looked up by name on every call, so the hot path is a
dict lookup and an identity check rather than anything derived from the spec.
"""

from __future__ import annotations

import asyncio

from patchwire.connectors.spec import ConnectorSpec
from patchwire.http._breaker import CircuitBreaker
from patchwire.http._budget import RetryBudget
from patchwire.http._ratelimit import Bucket, RateLimiters

__all__ = ["ConnectorGuard"]


class ConnectorGuard:
    __slots__ = ("_limiters", "_plans", "breaker", "budget", "semaphore", "spec")

    def __init__(self, spec: ConnectorSpec, breaker: CircuitBreaker, budget: RetryBudget,
                 limiters: RateLimiters) -> None:
        self.spec = spec
        self.breaker = breaker
        self.budget = budget
        # asyncio.Semaphore wakes one waiter per release, in arrival order
        self.semaphore = asyncio.Semaphore(spec.concurrency) if spec.concurrency else None
        self._limiters = limiters
        self._plans: dict[str | None, tuple[Bucket, ...]] = {}

    def buckets(self, connection: str | None) -> tuple[Bucket, ...]:
        plan = self._plans.get(connection)
        if plan is None:
            plan = self._limiters.plan(self.spec.name, self.spec.rate_limits,
                                       connection or "")
            self._plans[connection] = plan
        return plan
