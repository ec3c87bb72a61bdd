from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from patchwire.errors import UpstreamError
from patchwire.http import BreakerPolicy, HttpCore, RetryBudget, instant_retries
from tests.support.clocks import FakeClock
from tests.support.settings import LOOPBACK
from tests.support.upstream import Upstream, patchwire_for


@pytest.fixture(autouse=True)
def instant() -> Iterator[None]:
    with instant_retries():
        yield


def test_a_quiet_connector_may_still_retry_a_few_times() -> None:
    budget = RetryBudget(clock=FakeClock())
    budget.record_first()
    assert all(budget.try_retry() for _ in range(10))
    assert not budget.try_retry()


def test_retries_are_held_to_a_tenth_of_first_attempts_over_the_window() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock=clock)
    for _ in range(500):
        budget.record_first()
    assert sum(budget.try_retry() for _ in range(200)) == 50
    clock.advance(61)  # the window slides past every earlier attempt
    assert sum(budget.try_retry() for _ in range(200)) == 10


async def test_a_total_outage_is_not_amplified_beyond_ten_percent(tmp_path: Path) -> None:
    offered = 400
    up = Upstream([(503, {})] * 10_000)
    # breaker out of the way: this test is about the budget alone
    http = HttpCore(allow_networks=LOOPBACK, breaker=BreakerPolicy(min_calls=10**9))
    async with patchwire_for(tmp_path, up.app(), http=http) as pw:
        for _ in range(offered):
            with pytest.raises(UpstreamError):
                await pw.call("up.get", connection="c1")
    assert offered < len(up.requests) <= 1.1 * offered
