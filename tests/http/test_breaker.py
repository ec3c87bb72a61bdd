from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, ConnectorSpec, load_connector_text
from patchwire.connectors._registry import builtin_connector_texts
from patchwire.errors import CircuitOpenError, RateLimitedError, SpecError, UpstreamError
from patchwire.http import BreakerPolicy, CircuitBreaker, HttpCore, instant_retries
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from tests.support.clocks import FakeClock
from tests.support.settings import LOOPBACK, local_settings
from tests.support.upstream import Upstream, patchwire_for


@pytest.fixture(autouse=True)
def instant() -> Iterator[None]:
    with instant_retries():
        yield


POLICY = BreakerPolicy(failure_rate=0.5, min_calls=10, window=10, open_for=5)


def test_the_breaker_stays_closed_below_the_minimum_number_of_calls() -> None:
    b = CircuitBreaker("x", POLICY, clock=FakeClock())
    for _ in range(9):
        b.record(False)
    assert b.state == "closed" and b.allow() is None


def test_the_breaker_opens_on_the_failure_rate_and_names_the_probe_time() -> None:
    clock = FakeClock()
    b = CircuitBreaker("x", POLICY, clock=clock)
    for i in range(20):
        b.record(i % 2 == 0)  # 50% failures
    assert b.state == "open"
    assert b.allow() == pytest.approx(clock.now + 5)
    assert b.snapshot().probe_at == pytest.approx(time.time() + 5, abs=1)


def test_half_open_lets_exactly_one_probe_through_and_closes_on_success() -> None:
    clock = FakeClock()
    b = CircuitBreaker("x", POLICY, clock=clock)
    for _ in range(10):
        b.record(False)
    clock.advance(5)
    assert b.allow() is None  # the probe
    assert b.state == "half_open"
    assert all(b.allow() is not None for _ in range(5))  # everyone else still fails fast
    b.record(True)
    assert b.state == "closed" and b.allow() is None


def test_a_failed_probe_opens_the_breaker_again() -> None:
    clock = FakeClock()
    b = CircuitBreaker("x", POLICY, clock=clock)
    for _ in range(10):
        b.record(False)
    clock.advance(5)
    assert b.allow() is None
    b.record(False)
    assert b.state == "open" and b.allow() == pytest.approx(clock.now + 5)


def test_old_failures_slide_out_of_the_window() -> None:
    clock = FakeClock()
    b = CircuitBreaker("x", POLICY, clock=clock)
    for _ in range(9):
        b.record(False)
    clock.advance(11)
    b.record(False)
    assert b.state == "closed"


def test_a_429_counts_neither_as_a_failure_nor_as_a_success() -> None:
    b = CircuitBreaker("x", POLICY, clock=FakeClock())
    for _ in range(100):
        b.record_status(429, transient=True)
    assert b.state == "closed" and b.snapshot().calls == 0
    for _ in range(9):
        b.record_status(503, transient=True)
    for _ in range(50):  # as successes these would hold the failure rate under 50%
        b.record_status(429, transient=True)
    b.record_status(503, transient=True)
    assert b.state == "open"


def test_other_answers_count_as_the_retry_policy_judges_them() -> None:
    b = CircuitBreaker("x", POLICY, clock=FakeClock())
    b.record_status(404, transient=False)
    b.record_status(500, transient=False)  # a 500 to a POST: not retried, still a failure
    b.record_status(408, transient=True)  # a status the connector's retry policy lists
    state = b.snapshot()
    assert (state.calls, state.failures) == (3, 2)


def test_a_probe_answered_by_a_429_leaves_the_breaker_half_open_for_the_next_probe() -> None:
    clock = FakeClock()
    b = CircuitBreaker("x", POLICY, clock=clock)
    for _ in range(10):
        b.record(False)
    clock.advance(5)
    assert b.allow() is None  # the probe
    b.record_status(429, transient=True)
    assert b.state == "half_open"
    assert b.allow() is None  # the next call is the next probe
    b.record_status(200, transient=False)
    assert b.state == "closed"


async def test_many_429s_with_retry_after_from_an_upstream_do_not_open_the_breaker(
    tmp_path: Path,
) -> None:
    up = Upstream([(429, {"Retry-After": "1"})] * 200)
    http = HttpCore(allow_networks=LOOPBACK, clock=FakeClock(), breaker=POLICY)
    async with patchwire_for(tmp_path, up.app(), http=http) as pw:
        for _ in range(40):
            with pytest.raises(RateLimitedError):
                await pw.call("up.get", connection="c1")
        state = pw.breaker_state("up")
        assert len(up.requests) >= 40  # well past min_calls (10), every one a 429
        assert (state.state, state.failures) == ("closed", 0)


async def test_503s_from_the_same_upstream_still_open_the_breaker(tmp_path: Path) -> None:
    up = Upstream([(503, {"Retry-After": "1"})] * 200)
    http = HttpCore(allow_networks=LOOPBACK, clock=FakeClock(), breaker=POLICY)
    async with patchwire_for(tmp_path, up.app(), http=http) as pw:
        with pytest.raises(CircuitOpenError):
            for _ in range(40):
                with pytest.raises(UpstreamError):
                    await pw.call("up.get", connection="c1")
        assert pw.breaker_state("up").state == "open"
        assert len(up.requests) == 10  # min_calls failures, then fail fast


async def test_a_failing_sandbox_opens_the_breaker_then_it_recovers(tmp_path: Path) -> None:
    clock = FakeClock()
    http = HttpCore(allow_networks=LOOPBACK, clock=clock, breaker=POLICY)
    async with Sandbox() as sandbox:
        settings = local_settings(tmp_path / "h")
        async with Patchwire(settings, http=http) as pw:
            await pw.add_connection("shop", "s", {"sandbox_url": sandbox.url,
                                                  **SANDBOX_CREDENTIALS["shop"]})
            sandbox.set_chaos("shop", error_rate=1.0, error_statuses=(503,), seed=1)
            for _ in range(4):  # 3 attempts each: the 10th failure opens the breaker
                with pytest.raises((UpstreamError, CircuitOpenError)):
                    await pw.call("shop.get_order", {"order_id": "42"}, connection="s")
            assert sandbox.stats.requests["shop"] == 10
            with pytest.raises(CircuitOpenError) as info:
                await pw.call("shop.get_order", {"order_id": "42"}, connection="s")
            assert "shop" in str(info.value) and info.value.retry_after == pytest.approx(5, 0.01)
            state = pw.breaker_state("shop")
            assert state.state == "open" and state.probe_at is not None
            sent = sandbox.stats.requests["shop"]
            for _ in range(50):
                with pytest.raises(CircuitOpenError):
                    await pw.call("shop.get_order", {"order_id": "42"}, connection="s")
            assert sandbox.stats.requests["shop"] == sent  # fail fast: nothing sent

            sandbox.clear_chaos("shop")
            clock.advance(5)
            assert await pw.call("shop.get_order", {"order_id": "42"}, connection="s")
            assert pw.breaker_state("shop").state == "closed"


def _shop_with(lines: str) -> ConnectorSpec:
    text = builtin_shop_text()
    retry = next(line for line in text.splitlines() if line.startswith("retry:"))
    return load_connector_text(text.replace(retry, lines), "shop.yaml")


def builtin_shop_text() -> str:
    return dict(builtin_connector_texts())["builtin/shop.yaml"]


def test_breaker_settings_are_validated_by_the_connector_format() -> None:
    for bad in ("{failure_rate: 1.5}", "{min_calls: 0}", "{open_for: -1}", "{opens_for: 3}",
                "{min_calls: 50, window_calls: 10}"):
        with pytest.raises(SpecError):
            _shop_with(f"breaker: {bad}")
    spec = _shop_with("breaker: {failure_rate: 0.5, min_calls: 20, window: 60, open_for: 30}")
    assert spec.breaker is not None and spec.breaker.open_for == 30


def test_a_connector_without_breaker_settings_keeps_the_defaults_and_others_merge() -> None:
    http = HttpCore(breaker=POLICY)
    plain = _shop_with("retry: {attempts: 1}")
    assert http.guard(plain).breaker.policy == POLICY
    tuned = _shop_with("breaker: {min_calls: 200, open_for: 30}").model_copy(
        update={"name": "tuned"})
    policy = http.guard(tuned).breaker.policy
    assert (policy.min_calls, policy.open_for, policy.failure_rate) == (200, 30, 0.5)
    assert policy.window_calls >= 200  # else it could never open


async def test_a_connector_with_a_low_min_calls_opens_after_that_many_failures(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    http = HttpCore(allow_networks=LOOPBACK, clock=clock)  # defaults: min_calls 20
    spec = _shop_with("retry: {attempts: 1}\nbreaker: {min_calls: 3, open_for: 7}")
    async with Sandbox() as sandbox:
        settings = local_settings(tmp_path / "h")
        async with Patchwire(settings, http=http, connectors=ConnectorRegistry([spec])) as pw:
            await pw.add_connection("shop", "s", {"sandbox_url": sandbox.url,
                                                  **SANDBOX_CREDENTIALS["shop"]})
            sandbox.set_chaos("shop", error_rate=1.0, error_statuses=(503,), seed=1)
            for _ in range(3):
                with pytest.raises(UpstreamError):
                    await pw.call("shop.get_order", {"order_id": "42"}, connection="s")
            assert pw.breaker_state("shop").state == "open"
            with pytest.raises(CircuitOpenError) as info:
                await pw.call("shop.get_order", {"order_id": "42"}, connection="s")
            assert info.value.retry_after == pytest.approx(7, 0.01)
            assert sandbox.stats.requests["shop"] == 3
