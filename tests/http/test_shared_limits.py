"""Rate limits shared through the store: two Store instances (two engines, as two
processes would have) lease tokens of one declared limit."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from patchwire.connectors.spec import RateLimit
from patchwire.errors import StoreError
from patchwire.http import RateLimiters
from patchwire.store import Store
from patchwire.store._leases import LeaseRequest, LeaseResult, Settlement, Window, decide
from tests.support.clocks import FakeClock, FakeTimers
from tests.support.limits import STORE_WAIT, drive_shared, settle_refills, worst_window


def _limiters(store: Store, clock: FakeClock, timers: FakeTimers) -> RateLimiters:
    limiters = RateLimiters(clock=clock, call_later=timers.call_later)
    limiters.share(store, wall=clock)
    return limiters


@pytest.mark.parametrize(("limit", "per"), [(10, "second"), (60, "second"), (30, "minute")])
async def test_two_processes_sharing_a_limit_never_together_exceed_it_in_any_window(
    store_url: str, limit: int, per: str
) -> None:
    rate = RateLimit.model_validate(f"{limit}/{per} per connector")
    period = rate.period_seconds
    clock, rng = FakeClock(), random.Random(limit)
    timers = FakeTimers(clock)
    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        limiters = [_limiters(one, clock, timers), _limiters(two, clock, timers)]
        buckets = [lim.bucket("shop", None, [rate]) for lim in limiters]
        # both processes offer about three times the limit over five periods, in bursts
        arrivals = [(clock.now + rng.uniform(0, 5 * period) ** 2 / (5 * period), rng.randrange(2))
                    for _ in range(15 * limit)]
        granted = await drive_shared(buckets, timers, clock, arrivals)
        for lim in limiters:
            await lim.unshare()
    assert len(granted) == len(arrivals)
    assert worst_window([g for _, _, g in granted], period) <= limit
    for b in (0, 1):  # each process still serves its own callers first come, first served
        mine = [i for bucket, i, _ in granted if bucket == b]
        assert mine == sorted(mine)
    # saturated from the start: the shared limit is used, not just respected
    first = min(at for at, _ in arrivals)
    in_three = sum(1 for _, _, g in granted if g < first + 3 * period)
    assert in_three >= 3 * limit * 0.95


async def test_tokens_a_process_leased_but_did_not_use_are_free_once_it_lets_go(
    store_url: str,
) -> None:
    rate = RateLimit.model_validate("40/second per connector")  # batches of 2
    clock = FakeClock()
    timers = FakeTimers(clock)
    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        first, second = _limiters(one, clock, timers), _limiters(two, clock, timers)
        a, b = first.bucket("shop", None, [rate]), second.bucket("shop", None, [rate])
        callers = [asyncio.ensure_future(a.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        callers[1].cancel()  # leaves one of the two tokens asked for unused
        while not callers[0].done():
            assert timers.fire_next()
            await settle_refills([a])
        assert a.shared is not None and a.shared.tokens == 1
        await first.unshare()  # gives the unused token back

        takes = 0
        while takes < 40:
            got = b.try_take()
            if not got:
                assert b.shared is not None
                if b.shared.ready_at() > clock.now:
                    break  # the window is full
                b.shared.refill(2, lambda: None, lambda exc: None)
                await settle_refills([b])
                continue
            takes += 1
        await second.unshare()
    assert takes == 39


async def test_a_connector_without_declared_limits_never_touches_the_store() -> None:
    class NoStore:
        async def lease_rate_limit(self, req: LeaseRequest) -> LeaseResult:
            raise AssertionError("leased tokens for an unlimited bucket")

        async def settle_rate_limit_leases(self, holder: str,
                                           settle: Sequence[Settlement]) -> None:
            raise AssertionError("settled leases of an unlimited bucket")

        async def pause_rate_limit(self, bucket: str, until: float, now: float) -> None:
            raise AssertionError("recorded a pause of an unlimited bucket")

    limiters = RateLimiters(clock=FakeClock())
    limiters.share(NoStore())
    bucket = limiters.bucket("shop", "acme", [RateLimit.model_validate("5/second per connector")])
    assert bucket.shared is None  # the limit is the connector's, not this connection's
    assert all(bucket.try_take() for _ in range(1000))
    await limiters.unshare()


async def test_callers_fail_with_the_store_error_rather_than_pass_when_no_lease_can_be_had(
) -> None:
    class BrokenStore:
        async def lease_rate_limit(self, req: LeaseRequest) -> LeaseResult:
            raise StoreError("cannot lease rate-limit tokens: database is locked")

        async def settle_rate_limit_leases(self, holder: str,
                                           settle: Sequence[Settlement]) -> None:
            return None

        async def pause_rate_limit(self, bucket: str, until: float, now: float) -> None:
            return None

    clock = FakeClock()
    timers = FakeTimers(clock)
    limiters = RateLimiters(clock=clock, call_later=timers.call_later)
    limiters.share(BrokenStore(), wall=clock)
    bucket = limiters.bucket("shop", None, [RateLimit.model_validate("5/second per connector")])
    waiting = asyncio.ensure_future(bucket.acquire())
    await asyncio.sleep(0)
    assert timers.fire_next()
    with pytest.raises(StoreError, match="database is locked"):
        await asyncio.wait_for(waiting, STORE_WAIT)


def test_a_full_window_frees_when_enough_leases_have_aged_out_of_it() -> None:
    window = Window("shop 10/1s", 10, 1.0)
    counted = [[(4, 100.2), (4, 100.5), (2, 100.7)]]
    assert decide([window], counted, want=3, now=100.8) == (0, 100.2 + 1.0)
    assert decide([window], [[(4, 100.2), (4, 100.5)]], want=3, now=100.8) == (2, 100.8)


_WORKER = textwrap.dedent("""
    import asyncio, json, sys, time
    from patchwire.connectors.spec import RateLimit
    from patchwire.http import RateLimiters
    from patchwire.store import Store

    async def main(url: str) -> None:
        async with await Store.open(url) as store:
            limiters = RateLimiters()
            limiters.share(store)
            bucket = limiters.bucket("shop", None,
                                     [RateLimit.model_validate("20/second per connector")])
            granted: list[float] = []
            # Log the instant a leased token is spent, the instant the shared limit
            # accounts for: a caller resumes after its grant, so a time read there carries
            # the event loop's scheduling delay, and on a loaded machine a grant made at
            # the end of one window could read as falling into the next (21 in a window).
            quota = type(bucket.shared)
            take = quota.take

            def logged(self) -> bool:
                ok = take(self)
                if ok:
                    granted.append(time.time())
                return ok

            quota.take = logged
            print("ready", flush=True)
            sys.stdin.readline()
            deadline = time.monotonic() + 1.5

            async def caller() -> None:
                while time.monotonic() < deadline:
                    await bucket.acquire()

            await asyncio.gather(*(caller() for _ in range(8)))
            await limiters.unshare()
        print(json.dumps(granted), flush=True)

    asyncio.run(main(sys.argv[1]))
""")


@pytest.mark.slow  # two worker processes
def test_two_real_processes_sharing_a_store_together_stay_within_the_limit(
    store_url: str, tmp_path: Path
) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, store_url], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parents[2])
             for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # both start calling at once
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    granted = [t for out in outputs for t in json.loads(out.strip().splitlines()[-1])]
    assert worst_window(granted, 1.0) <= 20
    assert len(granted) >= 20  # both ran and the limit was reached
    assert all(json.loads(out.strip().splitlines()[-1]) for out in outputs)


async def test_a_pause_one_process_learns_holds_the_other_process_until_the_reset(
    store_url: str,
) -> None:
    rate = RateLimit.model_validate("100/second")  # per connection: the paused bucket
    clock = FakeClock()
    timers = FakeTimers(clock)
    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        first = RateLimiters(clock=clock, call_later=timers.call_later)
        shared_one = first.share(one, wall=clock)
        second = _limiters(two, clock, timers)
        a = first.bucket("shop", "acme", [rate])
        b = second.bucket("shop", "acme", [rate])
        other = second.bucket("shop", "globex", [rate])  # another connection: not paused

        a.pause(30.0)  # process one saw a 429 with Retry-After: 30
        paused_at = clock.now
        await asyncio.wait_for(shared_one.pauses_recorded(), STORE_WAIT)

        waiting = asyncio.ensure_future(b.acquire())
        free = asyncio.ensure_future(other.acquire())
        await asyncio.sleep(0)
        assert timers.fire_next()  # process two asks the store for tokens ...
        await settle_refills([b, other])
        while not free.done():
            assert timers.fire_next()
            await settle_refills([b, other])
        assert not waiting.done()  # ... and gets none while the pause lasts
        assert b.paused_until == pytest.approx(paused_at + 30.0)  # later callers see it
        while not waiting.done():
            assert timers.fire_next()
            await settle_refills([b])
        assert clock.now >= paused_at + 30.0
        await first.unshare()
        await second.unshare()


async def test_a_shared_pause_keeps_the_later_end_and_lapses_at_it(store_url: str) -> None:
    window = Window("shop/acme 5/1s", 5, 1.0)

    def req(now: float) -> LeaseRequest:
        return LeaseRequest((window,), "h", f"lease{now:g}", 1, now, 0.1, pause="shop/acme")

    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        await one.pause_rate_limit("shop/acme", 1030.0, now=1000.0)
        await two.pause_rate_limit("shop/acme", 1010.0, now=1001.0)  # an earlier end
        assert await two.lease_rate_limit(req(1002.0)) == (0, 1030.0, 1030.0)
        granted, _, paused = await one.lease_rate_limit(req(1030.0))
        assert granted == 1 and paused == float("-inf")
        # a lease that names no bucket to honour (or another one) is not held
        other = LeaseRequest((Window("shop 5/1s", 5, 1.0),), "h", "x", 1, 1002.0, 0.1)
        assert (await one.lease_rate_limit(other))[0] == 1
