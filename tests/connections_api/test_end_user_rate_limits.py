"""``"N/period per end_user"``: one bucket for all of an end user's connections to a
connector, shared by every process through the store; another end user's calls never
wait for it; a connection of no end user keeps the limit in its own bucket."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry
from patchwire.connectors.spec import RateLimit
from patchwire.errors import SpecError
from patchwire.http import RateLimiters
from patchwire.sandbox import Sandbox
from patchwire.store import Store
from tests.support.clocks import FakeClock, FakeTimers
from tests.support.limits import drive_shared, worst_window
from tests.support.settings import local_settings


def test_the_shorthand_reads_per_end_user_and_refuses_other_scopes() -> None:
    rate = RateLimit.model_validate("100/minute per end_user")
    assert (rate.limit, rate.per, rate.scope) == (100, "minute", "end_user")
    with pytest.raises(ValueError, match="per end_user"):
        RateLimit.model_validate("100/minute per tenant")


def test_a_connector_file_may_declare_a_per_end_user_limit() -> None:
    shop = ConnectorRegistry.load().get("shop")
    data = shop.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["rate_limits"] = ["5/second per end_user", {"limit": 9, "per": "minute",
                                                    "scope": "end_user"}]
    spec = type(shop).model_validate(data)
    assert [r.scope for r in spec.rate_limits] == ["end_user", "end_user"]
    data["rate_limits"] = [{"limit": 9, "per": "minute", "scope": "user"}]
    with pytest.raises((SpecError, ValueError)):
        type(shop).model_validate(data)


def test_two_connections_of_one_end_user_share_a_bucket_and_another_end_user_does_not(
) -> None:
    rate = RateLimit.model_validate("2/minute per end_user")
    limiters = RateLimiters()
    work = limiters.plan("shop", [rate], "u1-work", "u1")
    personal = limiters.plan("shop", [rate], "u1-personal", "u1")
    other = limiters.plan("shop", [rate], "u2-shop", "u2")
    operator = limiters.plan("shop", [rate], "acme", None)
    assert work[0] is personal[0] and work[0] is not other[0]
    assert [len(b.windows) for b in work] == [1, 0]  # the connection's own: no limit
    assert [len(b.windows) for b in operator] == [1]  # no end user: its own bucket
    assert work[0].try_take() and personal[0].try_take()
    assert not work[0].try_take() and not personal[0].try_take()
    assert other[0].try_take() and operator[0].try_take()


async def test_an_end_users_limit_holds_across_two_processes_sharing_the_store(
        store_url: str) -> None:
    rate = RateLimit.model_validate("20/second per end_user")
    clock, rng = FakeClock(), random.Random(5)
    timers = FakeTimers(clock)
    async with await Store.open(store_url) as one, await Store.open(store_url) as two:
        limiters = [RateLimiters(clock=clock, call_later=timers.call_later) for _ in (1, 2)]
        for lim, store in zip(limiters, (one, two), strict=True):
            lim.share(store, wall=clock)
        # u1's work connection in one process, their personal one in the other
        buckets = [limiters[0].plan("shop", [rate], "u1-work", "u1")[0],
                   limiters[1].plan("shop", [rate], "u1-personal", "u1")[0]]
        arrivals = [(clock.now + rng.uniform(0, 3.0), rng.randrange(2)) for _ in range(150)]
        granted = await drive_shared(buckets, timers, clock, arrivals)
        for lim in limiters:
            await lim.unshare()
    assert len(granted) == len(arrivals)
    assert worst_window([g for _, _, g in granted], 1.0) <= 20


async def test_calls_of_one_end_user_fill_their_bucket_and_leave_anothers_alone(
        tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    shop = ConnectorRegistry.load().get("shop")
    limited = shop.model_copy(update={"rate_limits": [
        RateLimit.model_validate("2/minute per end_user")]})
    async with Patchwire(local_settings(tmp_path / "home"),
                         connectors=ConnectorRegistry([limited])) as pw:
        values = {"sandbox_url": sandbox.url, "api_key": canary}
        await pw.add_connection("shop", "u1-work", values, end_user="u1")
        await pw.add_connection("shop", "u1-personal", values, end_user="u1")
        await pw.add_connection("shop", "u2-shop", values, end_user="u2")
        for name in ("u1-work", "u1-personal", "u2-shop"):
            await pw.call("shop.list_orders", connection=name)
        guard = pw.runtime.http.guard(limited)
        u1 = guard.buckets("u1-work", "u1")[0]
        assert u1 is guard.buckets("u1-personal", "u1")[0]
        assert u1.free_at() > time.monotonic()  # both slots taken (the limiters' clock)
        u2 = guard.buckets("u2-shop", "u2")[0]
        assert u2 is not u1 and u2.free_at() == float("-inf")  # one of two used
