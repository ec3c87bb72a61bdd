from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest

from patchwire.connectors.spec import RetryPolicy
from patchwire.errors import RateLimitedError, UpstreamError
from patchwire.http import (
    backoff_delay,
    instant_retries,
    is_transient_status,
    parse_retry_after,
    server_delay,
)
from tests.support.upstream import Upstream, patchwire_for


@pytest.fixture(autouse=True)
def instant() -> Iterator[None]:
    with instant_retries():
        yield


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    now = 1_700_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30.0)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_reset_headers_are_read_as_seconds_or_as_an_epoch_timestamp() -> None:
    policy = RetryPolicy()
    assert server_delay({"RateLimit-Reset": "12"}, policy) == 12.0
    assert server_delay({"X-RateLimit-Reset": "1700000090"}, policy,
                        now=1_700_000_000.0) == pytest.approx(90.0)
    # Retry-After wins over reset headers
    assert server_delay({"Retry-After": "3", "RateLimit-Reset": "50"}, policy) == 3.0


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=4)
    rng = random.Random(1)
    for n, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0)]:
        samples = [backoff_delay(policy, n, rng) for _ in range(200)]
        assert all(0 <= s <= cap for s in samples)
        assert max(samples) > cap * 0.8 and min(samples) < cap * 0.2  # spread over [0, cap]


def test_only_transient_statuses_are_retried_and_500_only_when_idempotent() -> None:
    p = RetryPolicy()
    for s in (429, 502, 503, 504):
        assert is_transient_status(s, p, idempotent=False)
    assert is_transient_status(500, p, idempotent=True)
    assert not is_transient_status(500, p, idempotent=False)
    for s in (400, 401, 404, 409, 422, 501):
        assert not is_transient_status(s, p, idempotent=True)


async def test_a_get_is_retried_three_times_by_default(tmp_path: Path) -> None:
    up = Upstream([(503, {}), (502, {}), (504, {})])
    async with patchwire_for(tmp_path, up.app()) as pw:
        with pytest.raises(UpstreamError) as info:
            await pw.call("up.get", connection="c1")
    assert info.value.status == 504
    assert len(up.requests) == 3


async def test_a_post_without_an_idempotency_key_is_not_retried(tmp_path: Path) -> None:
    up = Upstream([(503, {}), (503, {})])
    async with patchwire_for(tmp_path, up.app()) as pw:
        with pytest.raises(UpstreamError):
            await pw.call("up.create", connection="c1")
    assert len(up.requests) == 1


async def test_a_post_gets_one_generated_idempotency_key_kept_across_attempts(
    tmp_path: Path,
) -> None:
    up = Upstream([(503, {}), (500, {})])
    extra = "retry: {attempts: 3, backoff_initial: 0, idempotency_header: Idempotency-Key}"
    async with patchwire_for(tmp_path, up.app(), extra) as pw:
        outcome = await pw.execute("up.create", connection="c1")
        again = await pw.execute("up.create", connection="c1")
    assert outcome.attempts == 3 and again.attempts == 1
    keys = [h["Idempotency-Key"] for h in up.headers_seen]
    assert len(set(keys[:3])) == 1 and len(keys[0]) >= 16
    assert keys[3] != keys[0]  # a new logical call, a new key


async def test_a_callers_idempotency_key_is_kept(tmp_path: Path) -> None:
    up = Upstream([(503, {})])
    extra = "retry: {attempts: 3, backoff_initial: 0, idempotency_header: idempotency-key}"
    async with patchwire_for(tmp_path, up.app(), extra) as pw:
        await pw.call("up.create", {"key": "mine-1"}, connection="c1")
    assert [h["Idempotency-Key"] for h in up.headers_seen] == ["mine-1", "mine-1"]


async def test_retry_after_beyond_the_cap_fails_fast_saying_when_to_retry(
    tmp_path: Path,
) -> None:
    up = Upstream([(429, {"Retry-After": "3600"})])
    async with patchwire_for(tmp_path, up.app()) as pw:
        with pytest.raises(RateLimitedError) as info:
            await pw.call("up.get", connection="c1")
    assert info.value.retry_after == 3600
    assert len(up.requests) == 1


async def test_a_reset_header_beyond_the_cap_fills_in_when_to_retry(tmp_path: Path) -> None:
    reset = int(datetime.now(UTC).timestamp()) + 600
    up = Upstream([(429, {"X-RateLimit-Reset": str(reset)})])
    async with patchwire_for(tmp_path, up.app()) as pw:
        with pytest.raises(RateLimitedError) as info:
            await pw.call("up.get", connection="c1")
    assert info.value.retry_after is not None and 590 < info.value.retry_after <= 600
    assert len(up.requests) == 1


async def test_retry_after_within_the_cap_is_obeyed(tmp_path: Path) -> None:
    up = Upstream([(429, {"Retry-After": "2"})])
    async with patchwire_for(tmp_path, up.app()) as pw:
        outcome = await pw.execute("up.get", connection="c1")
    assert outcome.attempts == 2
