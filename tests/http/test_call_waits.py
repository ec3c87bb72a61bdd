"""Each call record says how long the call waited for its rate limits, its connector's
concurrency cap and the upstream's 429 pauses (``rate_limit_wait_ms``).

Time is fake throughout: the HTTP core reads a fake clock, the rate limiters wake on a fake
timer wheel and backoff sleeps are held until the test releases them, so a 60 s limit costs
no real time and every figure is exact."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

from aiohttp import web

from patchwire import Patchwire
from patchwire.http import Bucket, HttpCore
from patchwire.store.records import CallRecord
from tests.support.clocks import FakeClock, FakeTimers, SignallingTimers
from tests.support.settings import LOOPBACK
from tests.support.upstream import Upstream, patchwire_for

#: bound on anything the test waits for (a call finishing, a sleep being asked for)
WAIT_S = 5.0


class HeldSleeps:
    """A backoff ``sleep`` that parks each caller until the test releases it."""

    def __init__(self) -> None:
        self.asked: asyncio.Queue[tuple[float, asyncio.Event]] = asyncio.Queue()

    async def __call__(self, delay: float) -> None:
        release = asyncio.Event()
        await self.asked.put((delay, release))
        await release.wait()


async def records_of(pw: Patchwire) -> dict[str, CallRecord]:
    """The call log as written to and read back from the store, by request id."""
    return {r.request_id: r for r in await pw.recent_calls(limit=100)}


def call(pw: Patchwire, request_id: str) -> Awaitable[object]:
    return pw.call("up.get", connection="c1", request_id=request_id)


async def drive(task: asyncio.Future[object], bucket: Bucket, timers: FakeTimers) -> None:
    """Run ``task`` to its end, firing the fake timers its bucket waits on and letting the
    bucket's token leases from the store complete (declared limits are shared through the
    store, see ``http/_shared_limits.py``)."""
    async with asyncio.timeout(WAIT_S):
        while not task.done():
            await asyncio.sleep(0)
            shared = bucket.shared
            if shared is not None and shared.refilling is not None:
                await shared.refilling
            elif bucket.waiting and timers.next_due() is not None:
                timers.fire_next()
    await task


async def test_a_rate_limited_call_records_its_wait_and_an_unhindered_one_records_zero(
        tmp_path: Path) -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    http = HttpCore(allow_networks=LOOPBACK, clock=clock, call_later=timers.call_later)
    limit = 'rate_limits: ["1/minute per connection"]'
    async with patchwire_for(tmp_path, Upstream().app(), limit, http=http) as pw:
        # the store's leases on the fake clock too
        await http.limiters.unshare()
        http.limiters.share(pw.store, wall=clock)
        (bucket,) = http.guard(pw.connectors.get("up")).buckets("c1")
        await drive(asyncio.ensure_future(call(pw, "first")), bucket, timers)
        assert clock.now == 1000.0  # the minute's one slot was free: no time passed
        await drive(asyncio.ensure_future(call(pw, "second")), bucket, timers)
        assert clock.now == 1060.0  # the second call waited for the slot to free
        log = await records_of(pw)
    assert log["first"].rate_limit_wait_ms == 0.0
    assert log["second"].rate_limit_wait_ms == 60_000.0
    assert log["second"].status == "ok"


async def test_a_429_pause_counts_as_a_wait_for_the_refused_call_and_the_calls_it_held(
        tmp_path: Path) -> None:
    clock = FakeClock()
    timers = SignallingTimers(clock)
    sleeps = HeldSleeps()
    http = HttpCore(allow_networks=LOOPBACK, clock=clock,
                    call_later=timers.call_later, sleep=sleeps)
    up = Upstream([(429, {"Retry-After": "5"})])
    async with patchwire_for(tmp_path, up.app(), http=http) as pw:
        refused = asyncio.ensure_future(call(pw, "refused"))
        # the 429 paused the connection for 5 s; the refused call backs off as long
        delay, release = await asyncio.wait_for(sleeps.asked.get(), WAIT_S)
        assert delay == 5.0
        held = asyncio.ensure_future(call(pw, "held"))  # arrives during the pause
        await timers.next_armed()
        assert timers.next_due() == clock.now + 5.0
        assert timers.fire_next()  # the pause is over
        await asyncio.wait_for(held, WAIT_S)
        release.set()
        await asyncio.wait_for(refused, WAIT_S)
        log = await records_of(pw)
    assert log["refused"].attempts == 2 and log["refused"].rate_limit_wait_ms == 5_000.0
    assert log["held"].attempts == 1 and log["held"].rate_limit_wait_ms == 5_000.0
    assert len(up.requests) == 3


async def test_a_backoff_after_a_server_error_is_not_counted_as_a_rate_limit_wait(
        tmp_path: Path) -> None:
    sleeps = HeldSleeps()
    http = HttpCore(allow_networks=LOOPBACK, sleep=sleeps)
    up = Upstream([(503, {"Retry-After": "2"})])
    async with patchwire_for(tmp_path, up.app(), http=http) as pw:
        task = asyncio.ensure_future(call(pw, "flaky"))
        delay, release = await asyncio.wait_for(sleeps.asked.get(), WAIT_S)
        assert delay == 2.0
        release.set()
        await asyncio.wait_for(task, WAIT_S)
        log = await records_of(pw)
    assert log["flaky"].attempts == 2 and log["flaky"].rate_limit_wait_ms == 0.0


async def test_a_call_queued_behind_the_concurrency_cap_records_how_long_it_waited(
        tmp_path: Path) -> None:
    clock = FakeClock()
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.headers["X-Request-Id"] == "first":
            arrived.set()
            await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/thing", handler)
    async with patchwire_for(tmp_path, app, "concurrency: 1",
                             http=HttpCore(allow_networks=LOOPBACK, clock=clock)) as pw:
        first = asyncio.ensure_future(call(pw, "first"))
        try:
            await asyncio.wait_for(arrived.wait(), WAIT_S)
            second = asyncio.ensure_future(call(pw, "second"))
            semaphore = pw.runtime.http.guard(pw.connectors.get("up")).semaphore
            assert semaphore is not None
            for _ in range(10):  # the connection is cached: it queues on its first step
                await asyncio.sleep(0)
            assert semaphore._waiters, "the second call never queued"
            clock.advance(3.0)  # the first call holds the only slot for 3 (fake) seconds
        finally:
            release.set()  # never leave the upstream's handler parked
        await asyncio.wait_for(asyncio.gather(first, second), WAIT_S)
        log = await records_of(pw)
    assert log["first"].rate_limit_wait_ms == 0.0
    assert log["second"].rate_limit_wait_ms == 3_000.0
