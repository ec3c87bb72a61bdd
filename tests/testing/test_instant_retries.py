"""Instant retries are scoped, not global: ``instant_retries()`` makes the backoff of the
code inside it (and of the tasks it starts) zero, leaves every retry decision as it was,
and ends with its block; the ``instant_retries`` fixture does it for one test."""

from __future__ import annotations

import asyncio
import random

from patchwire.errors import UpstreamError
from patchwire.http import HttpCore, PreparedRequest, RawResponse, retries_are_instant
from patchwire.testing import MockTransport, instant_retries
from tests.support.orders import Opener


class Sleeps:
    """The HTTP core's ``sleep``: notes each backoff instead of waiting it out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def unavailable_twice() -> MockTransport:
    answers = [503, 503, 200]

    def upstream(request: PreparedRequest) -> RawResponse:
        status = answers.pop(0) if answers else 200
        return MockTransport.json({"id": "7", "status": status}, status=status)

    return MockTransport(upstream)


async def test_a_retried_call_inside_instant_retries_backs_off_without_waiting(
        open_orders: Opener) -> None:
    sleeps, transport = Sleeps(), unavailable_twice()
    async with open_orders(HttpCore(sleep=sleeps, transport=transport)) as pw:
        with instant_retries():
            order = await pw.call("orders.get_order", {"order_id": "7"}, connection="acme")

    assert order["status"] == 200
    assert len(transport.requests) == 3  # the same two retries as without it
    assert sleeps.delays == []


async def test_outside_instant_retries_the_same_call_backs_off(open_orders: Opener) -> None:
    sleeps, transport = Sleeps(), unavailable_twice()
    http = HttpCore(sleep=sleeps, transport=transport, rng=random.Random(7))
    async with open_orders(http) as pw:
        await pw.call("orders.get_order", {"order_id": "7"}, connection="acme")

    assert len(transport.requests) == 3
    assert len(sleeps.delays) == 2 and all(0 < d <= 5 for d in sleeps.delays)  # backoff_max


async def test_instant_retries_change_no_decision_a_call_still_gives_up_after_its_attempts(
        open_orders: Opener) -> None:
    transport = MockTransport(lambda request: MockTransport.json({}, status=503))
    async with open_orders(HttpCore(sleep=Sleeps(), transport=transport)) as pw:
        with instant_retries():
            try:
                await pw.call("orders.get_order", {"order_id": "7"}, connection="acme")
            except UpstreamError as exc:
                assert exc.status == 503
            else:
                raise AssertionError("a call answered 503 three times succeeded")

    assert len(transport.requests) == 3  # retry.attempts


async def test_a_task_started_inside_instant_retries_keeps_them_and_one_started_before_does_not(
        ) -> None:
    release = asyncio.Event()

    async def seen_after_release() -> bool:
        await release.wait()
        return retries_are_instant()

    before = asyncio.create_task(seen_after_release())
    with instant_retries():
        inside = asyncio.create_task(seen_after_release())
        release.set()
        assert retries_are_instant()
        results = await asyncio.wait_for(asyncio.gather(before, inside), 5)

    assert results == [False, True]


def test_instant_retries_end_with_their_block_and_nest() -> None:
    assert not retries_are_instant()
    with instant_retries():
        assert retries_are_instant()
        with instant_retries(False):
            assert not retries_are_instant()
        assert retries_are_instant()
    assert not retries_are_instant()


def test_the_instant_retries_fixture_holds_for_its_test(instant_retries: None) -> None:
    assert retries_are_instant()


async def test_the_instant_retries_fixture_holds_in_an_async_test(instant_retries: None) -> None:
    assert retries_are_instant()
    assert await asyncio.create_task(asyncio.sleep(0, retries_are_instant()))


def test_a_test_without_the_fixture_does_not_inherit_it() -> None:
    assert not retries_are_instant()
