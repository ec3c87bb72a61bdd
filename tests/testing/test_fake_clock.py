"""The fake clock moves only when told: any ``clock=`` of Patchwire can run on it, so time
spans (a circuit breaker's open period...) pass without waiting."""

from __future__ import annotations

import pytest

from patchwire.errors import CircuitOpenError, UpstreamError
from patchwire.http import HttpCore, PreparedRequest, RawResponse
from patchwire.testing import FakeClock, MockTransport
from tests.support.orders import Opener


def test_the_fake_clock_stands_still_until_advanced() -> None:
    clock = FakeClock(100.0)

    assert clock() == clock() == clock.now == 100.0
    assert clock.advance(2.5) == 102.5
    assert clock() == 102.5


def test_the_fake_clock_refuses_to_go_back() -> None:
    clock = FakeClock()

    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    assert clock() == 1_000_000.0


async def test_sleeping_on_the_fake_clock_moves_it_instead_of_waiting() -> None:
    clock = FakeClock(0.0)

    await clock.sleep(3600)

    assert clock() == 3600


def test_the_fake_clock_fixture_is_a_fresh_fake_clock(fake_clock: FakeClock) -> None:
    start = fake_clock()
    fake_clock.advance(10)
    assert fake_clock() == start + 10


async def test_a_fake_clock_passes_a_circuit_breakers_open_period_without_waiting(
        open_orders: Opener, fake_clock: FakeClock) -> None:
    failing = True

    def upstream(request: PreparedRequest) -> RawResponse:
        return MockTransport.json({}, status=500 if failing else 200)

    transport = MockTransport(upstream)
    async with open_orders(HttpCore(clock=fake_clock, transport=transport), attempts=1) as pw:
        for _ in range(4):  # min_calls 4, every one failed: the breaker opens
            with pytest.raises(UpstreamError):
                await pw.call("orders.get_order", {"order_id": "1"}, connection="acme")
        sent = len(transport.requests)
        with pytest.raises(CircuitOpenError):
            await pw.call("orders.get_order", {"order_id": "1"}, connection="acme")
        assert len(transport.requests) == sent  # failed fast, nothing sent

        failing = False
        fake_clock.advance(30)  # open_for
        order = await pw.call("orders.get_order", {"order_id": "1"}, connection="acme")

    assert order == {}
    assert len(transport.requests) == sent + 1
