"""Outbound webhooks: the worker that dispatches events and sends deliveries.

Events (``events`` table: flow ``emit`` steps, run and sync events, :func:`publish`) reach
subscriber endpoints in three steps:

1. **Dispatch** (:func:`~patchwire.webhooks._dispatcher.dispatch_events`): undispatched
   events, oldest first, become one delivery per matching active subscription, and are
   marked dispatched, in one transaction.
2. **Send** (:class:`DeliveryWorker`): per endpoint strictly in the order of the events,
   one request in flight; endpoints in parallel. The worker holds a lease on the endpoint
   while it sends (``_endpoint_leases.py``), so two processes never send to one endpoint
   at once. The request itself: ``_delivery_sender.py``.
3. **Retry**: a failed attempt (non-2xx, timeout, connection error) is tried again on
   :data:`RETRY_SCHEDULE` with ±20% jitter, later if ``Retry-After`` asks (capped); after
   the last attempt the delivery is ``failed`` and the endpoint's next delivery goes.
   ``410 Gone`` disables the endpoint; so do five days of failures without a success.

Ordering choice (Svix FIFO-style): a failing delivery holds back the later deliveries of
its endpoint until it succeeds or exhausts its schedule. Receivers can then apply events
in order without reordering logic; the price is head-of-line blocking on a broken
endpoint, which is bounded by the schedule (about 27.6 hours) and by disabling. Other
endpoints are never held back.

Delivery is at least once: a crash after a request but before its result is committed
sends it again (receivers dedupe on ``webhook-id``). Results are group-committed
(``_result_writer.py``) so that the store is not one transaction per delivery; an
endpoint's results are committed before its next batch is read and before its lease is
released.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp.abc import AbstractResolver

from patchwire.http import HttpCore, retries_are_instant
from patchwire.ids import new_id
from patchwire.store import new_owner_id
from patchwire.webhooks._delivery_records import iso
from patchwire.webhooks._delivery_sender import (
    CONNECT_TIMEOUT_S,
    REQUEST_TIMEOUT_S,
    DeliverySender,
    Outcome,
)
from patchwire.webhooks._dispatcher import DISPATCH_BATCH
from patchwire.webhooks._endpoint_leases import Endpoint, EndpointLeases, PendingDelivery
from patchwire.webhooks._outbox import WebhookOutbox
from patchwire.webhooks._result_writer import ResultWriter
from patchwire.webhooks._retry_schedule import (
    DISABLE_AFTER_FAILING_S,
    RETRY_JITTER,
    RETRY_SCHEDULE,
    retry_delay,
)
from patchwire.webhooks._wakeup import forget_worker, register_worker

__all__ = ["DeliveryWorker"]

log = logging.getLogger("patchwire.webhooks")

#: results waiting for their commit before a sender waits for the writer
WRITE_BACKLOG = 5000


class DeliveryWorker:
    """Dispatches events and sends deliveries while started (``patchwire serve``).

    ``clock`` (epoch seconds) and ``rng`` can be replaced in tests, which then drive the
    worker with :meth:`run_once`; ``instant`` (default: the call path's testing setting,
    ``patchwire.http.instant_retries()``, where the worker runs) makes every retry wait
    zero. ``http``: the call path's HTTP core to send through (without it the worker
    makes its own, guarded by the outbox's ``allow_networks``, and ``resolver`` replaces
    DNS under its SSRF guard in tests). ``max_endpoints``: endpoints sent to at once (one
    request in flight each).
    """

    def __init__(
        self, outbox: WebhookOutbox, *, owner: str | None = None, lease: float = 60.0,
        poll_interval: float = 0.5, max_endpoints: int = 256,
        clock: Callable[[], float] | None = None, rng: random.Random | None = None,
        schedule: Sequence[float] = RETRY_SCHEDULE, jitter: float = RETRY_JITTER,
        instant: bool | None = None, timeout: float = REQUEST_TIMEOUT_S,
        connect_timeout: float = CONNECT_TIMEOUT_S, resolver: AbstractResolver | None = None,
        http: HttpCore | None = None,
    ) -> None:
        self.outbox = outbox
        self.store = outbox.store
        self.owner = owner or new_owner_id()
        self.lease = lease
        self.poll_interval = poll_interval
        self.max_endpoints = max_endpoints
        self.clock = clock or outbox.clock
        self.rng = rng or random.Random()
        self.schedule = tuple(schedule)
        self.jitter = jitter
        self._instant = instant
        self._leases = EndpointLeases(self.store, outbox.vault, owner=self.owner, lease=lease)
        # the call path's HTTP core when given (its SSRF guard admits the same networks:
        # both come from the settings' allow_networks); else one of the worker's own
        self._own_http = http is None
        if http is None:
            http = HttpCore(allow_networks=outbox.allow_networks, resolver=resolver,
                            limit=max(max_endpoints, 1))
        self._sender = DeliverySender(http, clock=self.clock, timeout=timeout,
                                      connect_timeout=connect_timeout)
        self._writer = ResultWriter(self.store)
        self._tasks: dict[str, asyncio.Task[int]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._stopping = False
        #: attempts made since start (benchmarks and tests read it)
        self.sent = 0

    @property
    def instant(self) -> bool:
        return retries_are_instant() if self._instant is None else self._instant

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> DeliveryWorker:
        self._stopping = False
        register_worker(self)
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def stop(self) -> None:
        """Stop sending. Requests in flight are abandoned (sent again later: at least
        once); recorded results are committed and this worker's leases released."""
        self._stopping = True
        forget_worker(self)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._writer.close()
        await self._leases.release_all()
        if self._own_http:
            await self._sender.http.close()

    async def __aenter__(self) -> DeliveryWorker:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def kick(self) -> None:
        """Look for work now instead of at the next poll."""
        self._kick.set()

    # -- driving -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_interval)
            self._kick.clear()

    async def _pass(self) -> list[asyncio.Task[int]]:
        while await self.outbox.dispatch() >= DISPATCH_BATCH:
            pass
        return await self._start_due()

    async def run_once(self) -> int:
        """Dispatch every event, then send to every due endpoint until each is done or
        waits for a retry; returns the attempts made. Tests drive the worker with this."""
        started = await self._pass()
        results = await asyncio.gather(*started)
        await self._writer.close()
        return sum(results)

    async def _start_due(self) -> list[asyncio.Task[int]]:
        room = self.max_endpoints - len(self._tasks)
        if room <= 0 or self._stopping:
            return []
        now = self.clock()
        due = await self._leases.due(now, room + len(self._tasks))
        started: list[asyncio.Task[int]] = []
        for sub_id in due:
            if sub_id in self._tasks or len(self._tasks) >= self.max_endpoints:
                continue
            task = asyncio.get_running_loop().create_task(self._serve(sub_id))
            self._tasks[sub_id] = task
            task.add_done_callback(functools.partial(self._done, sub_id))
            started.append(task)
        return started

    def _done(self, sub_id: str, task: asyncio.Task[int]) -> None:
        if self._tasks.get(sub_id) is task:
            del self._tasks[sub_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("sending to webhook endpoint %s failed: %s", sub_id, task.exception())
        # new deliveries may have come for it while it finished
        self._kick.set()

    # -- one endpoint ------------------------------------------------------------------------

    async def _claim(self, sub_id: str, now: float) -> Endpoint | None:
        return await self._leases.claim(sub_id, now)

    async def _serve(self, sub_id: str) -> int:
        """Send an endpoint's pending deliveries in order until none is left, one waits
        for a retry, or the endpoint is disabled. Returns the attempts made."""
        now = self.clock()
        ep = await self._claim(sub_id, now)
        if ep is None:
            return 0
        if ep.retry_at is not None and ep.retry_at > now:  # another worker's retry wait
            await self._leases.release(sub_id)
            return 0
        made = 0
        renewed = now
        last: asyncio.Future[None] | None = None
        try:
            while not self._stopping:
                if last is not None:
                    # committed before reading again: a sent delivery must not come back
                    await last
                batch = await self._leases.pending(sub_id)
                if not batch:
                    break
                go_on = True
                for item in batch:
                    again = True
                    while again and go_on:  # again: an instant retry (testing setting)
                        now = self.clock()
                        if now - renewed > self.lease / 3:
                            if not await self._leases.renew(ep, now):
                                go_on = False
                                break
                            renewed = now
                        outcome = await self._sender.send(ep, item)
                        made += 1
                        self.sent += 1
                        last, go_on, again = self._record(ep, item, outcome)
                        if self._writer.backlog > WRITE_BACKLOG:
                            await last
                    if not go_on:
                        break
                if not go_on:
                    break
            if last is not None:
                await last
        finally:
            await self._leases.release(sub_id)
        return made

    def _record(self, ep: Endpoint, item: PendingDelivery,
                outcome: Outcome) -> tuple[asyncio.Future[None], bool, bool]:
        """Queue the attempt's result; returns its commit future, whether to go on with
        the endpoint, and whether to try this delivery again at once."""
        now = self.clock()
        tries, attempts = item.tries + 1, item.attempts + 1
        code = outcome.status_code
        ok = code is not None and 200 <= code < 300
        sub: dict[str, Any] = {}
        go_on = True
        delivered: float | None = None
        next_at: float | None = None
        if ok:
            status = "succeeded"
            delivered = now
            if ep.failing_since is not None or ep.retry_at is not None:
                sub = {"failing_since": None, "retry_at": None}
                ep.failing_since = ep.retry_at = None
        elif code == 410:
            # the receiver says it no longer wants webhooks from us (Standard Webhooks)
            status = "failed"
            sub = {"status": "disabled", "disabled_at": now, "retry_at": None,
                   "disabled_reason": "the endpoint answered 410 Gone"}
            go_on = False
        else:
            if ep.failing_since is None:
                ep.failing_since = now
                sub["failing_since"] = now
            delay = retry_delay(tries, self.rng, retry_after=outcome.retry_after,
                                schedule=self.schedule, jitter=self.jitter)
            if delay is None:
                status = "failed"  # the next delivery of the endpoint goes now
                if ep.retry_at is not None:
                    sub["retry_at"] = ep.retry_at = None
            else:
                status = "pending"
                delay = 0.0 if self.instant else delay
                next_at = now + delay
                if delay > 0:
                    sub["retry_at"] = ep.retry_at = next_at
                    go_on = False
            if now - ep.failing_since >= DISABLE_AFTER_FAILING_S:
                sub.update(status="disabled", disabled_at=now, retry_at=None,
                           disabled_reason=f"every delivery failed since "
                                           f"{iso(ep.failing_since)} (5 days)")
                go_on = False
        if sub:
            sub["updated_at"] = now
        # in UPDATE_FIELDS / ATTEMPT_COLUMNS order
        delivery = (item.id, status, tries, attempts, next_at, code, outcome.error,
                    outcome.latency_ms, now, delivered)
        attempt = (new_id(), item.id, ep.id, attempts, "succeeded" if ok else "failed", code,
                   outcome.latency_ms, outcome.error, now - outcome.latency_ms / 1000.0)
        item.tries, item.attempts = tries, attempts
        # still pending and going on: the wait was zero, so it is tried again before any
        # later delivery of the endpoint
        again = status == "pending" and go_on
        return (self._writer.enqueue(delivery, attempt, (ep.id, sub) if sub else None),
                go_on, again)
