"""Per-connector resilience state: breaker, retry budget, concurrency cap, rate buckets.

Built once per connector spec and looked up by name on every call, so the hot path is a
dict lookup and an identity check rather than anything derived from the spec.

A connector's ``concurrency`` cap is an asyncio.Semaphore in each process; when several
processes share the store (``shared_concurrency``), a call under the cap also takes one of
the connector's slots in the store (:class:`SharedSlots`, ``store/_slots.py``), so the cap
holds for all of them together.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from patchwire.connectors.spec import ConnectorSpec
from patchwire.http._breaker import CircuitBreaker
from patchwire.http._budget import RetryBudget
from patchwire.http._ratelimit import Bucket, RateLimiters

__all__ = ["ConnectorGuard", "HeldSlot", "SharedSlots", "SlotSource"]

log = logging.getLogger(__name__)

#: longest wait for slot releases still being written to the store (at shutdown)
RELEASE_WAIT = 5.0


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
        #: per connection: the end user it was planned for, and its buckets
        self._plans: dict[str | None, tuple[str | None, tuple[Bucket, ...]]] = {}

    def buckets(self, connection: str | None,
                end_user: str | None = None) -> tuple[Bucket, ...]:
        """The buckets a call through ``connection`` (of ``end_user``) takes a slot of,
        the connection's own last."""
        planned = self._plans.get(connection)
        # a connection's end user never changes, but a name removed and added again for
        # another end user must not keep the first one's bucket
        if planned is None or planned[0] != end_user:
            planned = (end_user, self._limiters.plan(
                self.spec.name, self.spec.rate_limits, connection or "", end_user))
            self._plans[connection] = planned
        return planned[1]


class SlotSource(Protocol):
    """What the store offers (``patchwire.store._slots.SlotTable``)."""

    async def take_slot(self, connector: str, cap: int, holder: str, now: float,
                        expires_at: float) -> int | None: ...

    async def release_slot(self, connector: str, slot: int, holder: str) -> None: ...


@dataclass(frozen=True, slots=True)
class HeldSlot:
    connector: str
    index: int
    holder: str


class SharedSlots:
    """This process's side of the concurrency slots in the store.

    Every take has its own holder id (the process's id and a counter), so a slot that
    expired under a slow call and was taken over is never cleared by the slow call.
    """

    def __init__(self, source: SlotSource, *, wall: Callable[[], float] = time.time,
                 holder: str | None = None) -> None:
        self.source = source
        # expiries are compared across processes: the wall clock, not a monotonic one
        self.wall = wall
        self.holder = holder or uuid.uuid4().hex
        self._takes = itertools.count()
        #: releases being written to the store
        self._releasing: set[asyncio.Task[None]] = set()

    async def try_take(self, connector: str, cap: int, ttl: float) -> HeldSlot | None:
        """One of the ``cap`` slots of ``connector`` for ``ttl`` seconds, or None when
        every one is held."""
        holder = f"{self.holder}.{next(self._takes):x}"
        now = self.wall()
        taking = asyncio.ensure_future(
            self.source.take_slot(connector, cap, holder, now, now + ttl))
        try:
            # shielded: a statement cancelled half-way may still have taken the slot
            index = await asyncio.shield(taking)
        except asyncio.CancelledError:
            taking.add_done_callback(functools.partial(self._taken_late, connector, holder))
            raise
        return None if index is None else HeldSlot(connector, index, holder)

    async def release(self, slot: HeldSlot) -> None:
        """Give ``slot`` back. Never raises a store error (the slot then frees itself at
        its expiry); a cancellation stops the wait, not the release."""
        task = asyncio.ensure_future(self._release(slot))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)
        await asyncio.shield(task)

    async def close(self) -> None:
        """Wait (at most RELEASE_WAIT seconds) for the releases being written."""
        if self._releasing:
            await asyncio.wait(self._releasing, timeout=RELEASE_WAIT)

    async def _release(self, slot: HeldSlot) -> None:
        try:
            await self.source.release_slot(slot.connector, slot.index, slot.holder)
        except Exception as exc:
            log.warning("could not release concurrency slot %d of %s (it frees itself at "
                        "its expiry): %s", slot.index, slot.connector, exc)

    def _taken_late(self, connector: str, holder: str, taking: asyncio.Future[int | None]
                    ) -> None:
        """The caller was cancelled while its take ran: give back what the take got."""
        if taking.cancelled() or taking.exception() is not None:
            return
        index = taking.result()
        if index is not None:
            task = asyncio.ensure_future(self._release(HeldSlot(connector, index, holder)))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)
