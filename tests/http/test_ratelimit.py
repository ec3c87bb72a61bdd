from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from patchwire.errors import RateLimitedError
from patchwire.http import Bucket, SlidingWindow, instant_retries
from tests.support.clocks import FakeClock, FakeTimers
from tests.support.limits import worst_window
from tests.support.upstream import Upstream, patchwire_for


async def _drive(bucket: Bucket, timers: FakeTimers, clock: FakeClock,
                 arrivals: list[float]) -> list[tuple[int, float]]:
    """Callers arrive at fake times; returns (caller, grant time) in grant order."""
    granted: list[tuple[int, float]] = []
    tasks: list[asyncio.Task[None]] = []

    async def caller(i: int) -> None:
        await bucket.acquire()
        granted.append((i, clock.now))

    for i, at in enumerate(sorted(arrivals)):
        while (due := timers.next_due()) is not None and due <= at:
            timers.fire_next()
            await asyncio.sleep(0)  # let woken callers record their grant
        clock.now = max(clock.now, at)
        tasks.append(asyncio.ensure_future(caller(i)))
        await asyncio.sleep(0)
    while not all(t.done() for t in tasks):
        assert timers.fire_next(), "callers wait with no timer armed"
        for _ in range(3):
            await asyncio.sleep(0)
    return granted


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 20),
    period=st.sampled_from([0.5, 1.0, 60.0]),
    gaps=st.lists(st.floats(0, 2.0, allow_nan=False), min_size=1, max_size=120),
    paused=st.one_of(st.none(), st.floats(0.01, 5.0)),
)
def test_no_window_of_one_period_ever_holds_more_than_the_limit(
    limit: int, period: float, gaps: list[float], paused: float | None
) -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    bucket = Bucket("b", [SlidingWindow(limit, period)], clock=clock,
                    call_later=timers.call_later)
    if paused is not None:
        bucket.pause(paused)
    arrivals, t = [], clock.now
    for g in gaps:
        t += g * period
        arrivals.append(t)
    granted = asyncio.run(_drive(bucket, timers, clock, arrivals))
    assert len(granted) == len(arrivals)
    assert worst_window([g for _, g in granted], period) <= limit
    # first come, first served: callers are granted in arrival order
    assert [i for i, _ in granted] == sorted(i for i, _ in granted)
    if paused is not None:
        assert min(g for _, g in granted) >= 1000.0 + paused


def test_a_saturated_limit_is_reached_within_one_percent_over_ten_seconds() -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    bucket = Bucket("b", [SlidingWindow(50, 1.0)], clock=clock, call_later=timers.call_later)
    start = clock.now
    # 2,000 callers all arrive at once: far more than 10 s of the limit
    granted = asyncio.run(_drive(bucket, timers, clock, [start] * 2000))
    in_ten = sum(1 for _, g in granted if g < start + 10.0)
    assert abs(in_ten - 500) <= 5
    # one timer a slot-freeing moment, not one wake-up per waiter per tick
    assert timers.armed <= len(granted) // 50 + 2


def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    async def scenario() -> list[str]:
        clock = FakeClock()
        timers = FakeTimers(clock)
        bucket = Bucket("b", [SlidingWindow(1, 1.0)], clock=clock,
                        call_later=timers.call_later)
        order: list[str] = []
        await bucket.acquire()

        async def caller(name: str) -> None:
            await bucket.acquire()
            order.append(name)

        a = asyncio.ensure_future(caller("a"))
        b = asyncio.ensure_future(caller("b"))
        await asyncio.sleep(0)
        a.cancel()
        await asyncio.sleep(0)
        while not b.done():
            assert timers.fire_next()
            await asyncio.sleep(0)
        return order

    assert asyncio.run(scenario()) == ["b"]


@pytest.fixture
def instant() -> Iterator[None]:
    with instant_retries():
        yield


async def test_a_429_beyond_the_cap_pauses_the_connection_and_later_calls_fail_fast(
    tmp_path: Path,
) -> None:
    up = Upstream([(429, {"Retry-After": "600"})])
    async with patchwire_for(tmp_path, up.app(), connections=("c1", "c2")) as pw:
        with pytest.raises(RateLimitedError):
            await pw.call("up.get", connection="c1")
        with pytest.raises(RateLimitedError) as info:
            await pw.call("up.get", connection="c1")
        assert "c1" in str(info.value) and info.value.retry_after > 590
        assert await pw.call("up.get", connection="c2")  # other credentials are not paused
    assert len(up.requests) == 2


async def test_remaining_zero_pauses_the_bucket_until_the_reset(tmp_path: Path) -> None:
    reset = int(datetime.now(UTC).timestamp()) + 900
    up = Upstream([(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})])
    async with patchwire_for(tmp_path, up.app()) as pw:
        await pw.call("up.get", connection="c1")
        with pytest.raises(RateLimitedError) as info:
            await pw.call("up.get", connection="c1")
    assert 890 < info.value.retry_after <= 900
    assert len(up.requests) == 1


async def test_the_concurrency_cap_bounds_requests_in_flight(tmp_path: Path) -> None:
    release = asyncio.Event()
    in_flight = peak = 0
    arrived = asyncio.Condition()

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        async with arrived:
            arrived.notify_all()
        await release.wait()
        in_flight -= 1
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/thing", handler)
    async with patchwire_for(tmp_path, app, "concurrency: 2") as pw:
        calls = [asyncio.ensure_future(pw.call("up.get", connection="c1")) for _ in range(8)]
        async with arrived:
            await asyncio.wait_for(arrived.wait_for(lambda: in_flight == 2), 5)
        for _ in range(10):
            await asyncio.sleep(0)  # give any over-admitted call a chance to arrive
        assert in_flight == 2
        release.set()
        await asyncio.wait_for(asyncio.gather(*calls), 5)
    assert peak == 2


async def test_declared_limits_apply_per_connection_and_per_connector(tmp_path: Path) -> None:
    extra = """rate_limits:
  - "2/minute per connection"
  - "3/minute per connector"
"""
    up = Upstream()
    async with patchwire_for(tmp_path, up.app(), extra, connections=("c1", "c2")) as pw:
        await pw.call("up.get", connection="c1")
        await pw.call("up.get", connection="c1")
        await pw.call("up.get", connection="c2")
        bucket = pw.runtime.http.limiters.bucket("up", "c1")
        assert bucket.try_take() is False  # c1 is at its own limit
        third = asyncio.ensure_future(pw.call("up.get", connection="c2"))
        done, _ = await asyncio.wait([third], timeout=0.2)
        assert not done  # c2 is under its own limit but the connector is at its limit
        third.cancel()
    assert len(up.requests) == 3
