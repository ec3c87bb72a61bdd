from __future__ import annotations

import asyncio

import aiohttp
import pytest

from patchwire.sandbox import ChaosSettings, Sandbox, auth_headers


async def test_past_the_limit_the_api_answers_429_with_retry_after(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.set_chaos("shop", rate_limit_per_minute=2)
    url = sandbox.api_url("shop") + "/products"
    remaining = []
    for _ in range(2):
        async with http.get(url, headers=auth_headers("shop")) as resp:
            assert resp.status == 200
            assert resp.headers["X-RateLimit-Limit"] == "2"
            remaining.append(resp.headers["X-RateLimit-Remaining"])
    assert remaining == ["1", "0"]
    async with http.get(url, headers=auth_headers("shop")) as resp:
        assert resp.status == 429
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
        assert int(resp.headers["X-RateLimit-Reset"]) > 0
    # The limit is per credential and per API.
    async with http.get(url, headers={"X-API-Key": "other"}) as resp:
        assert resp.status == 401
    async with http.get(
        sandbox.api_url("payments") + "/charges", headers=auth_headers("payments")
    ) as resp:
        assert resp.status == 200
    assert sandbox.stats.rate_limited == 1


async def test_the_default_limit_does_not_disturb_a_benchmark(sandbox: Sandbox) -> None:
    assert sandbox.chaos_for("shop").rate_limit_per_minute >= 20_000


async def test_error_rate_one_turns_every_request_into_a_5xx(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.set_chaos(error_rate=1.0)
    for _ in range(5):
        async with http.get(
            sandbox.api_url("shop") + "/orders/1", headers=auth_headers("shop")
        ) as resp:
            assert resp.status in (500, 503)
            assert (await resp.json())["error"]["code"] == "sandbox_chaos"
    assert sandbox.stats.chaos.errors == 5


async def test_seeded_chaos_gives_the_same_outcomes_on_every_run(
    http: aiohttp.ClientSession,
) -> None:
    runs = []
    for _ in range(2):
        async with Sandbox(chaos=ChaosSettings(error_rate=0.5), seed=7) as sandbox:
            statuses = []
            for _ in range(20):
                async with http.get(
                    sandbox.api_url("shop") + "/products", headers=auth_headers("shop")
                ) as resp:
                    statuses.append(resp.status)
            runs.append(statuses)
    assert runs[0] == runs[1]
    assert {200} < set(runs[0])


async def test_per_api_chaos_leaves_other_apis_alone(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.set_chaos("payments", error_rate=1.0, error_statuses=[503])
    async with http.get(
        sandbox.api_url("payments") + "/charges", headers=auth_headers("payments")
    ) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
    async with http.get(
        sandbox.api_url("shop") + "/products", headers=auth_headers("shop")
    ) as resp:
        assert resp.status == 200


async def test_drop_rate_one_closes_the_connection_without_a_response(
    sandbox: Sandbox,
) -> None:
    sandbox.set_chaos("shop", drop_rate=1.0)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with http.get(
                sandbox.api_url("shop") + "/orders/1", headers=auth_headers("shop")
            ):
                pass
    # aiohttp's client retries an idempotent request once after a disconnect.
    assert sandbox.stats.chaos.dropped >= 1
    assert sandbox.stats.statuses == {}


async def test_a_held_request_times_out_the_client_and_stop_releases_it(
    http: aiohttp.ClientSession,
) -> None:
    sandbox = Sandbox(chaos=ChaosSettings(timeout_rate=1.0, timeout_hold_s=60))
    await sandbox.start()
    try:
        with pytest.raises(TimeoutError):
            async with http.get(
                sandbox.api_url("shop") + "/products",
                headers=auth_headers("shop"),
                timeout=aiohttp.ClientTimeout(total=0.3),
            ):
                pass
        assert sandbox.stats.chaos.held == 1
    finally:
        await asyncio.wait_for(sandbox.stop(), 10)


async def test_chaos_is_controllable_over_http(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    control = sandbox.url + "/_sandbox/chaos"
    async with http.put(control, json={"api": "helpdesk", "error_rate": 1, "seed": 3}) as resp:
        assert resp.status == 200
        assert (await resp.json())["overrides"] == {"helpdesk": {"error_rate": 1.0}}
    assert sandbox.chaos_for("helpdesk").error_rate == 1.0
    assert sandbox.chaos.error_rate == 0.0
    async with http.put(control, json={"error_rate": 2}) as resp:
        assert resp.status == 422
    async with http.put(control, json={"api": "nope", "error_rate": 0.1}) as resp:
        assert resp.status == 422
    async with http.delete(control) as resp:
        assert (await resp.json())["overrides"] == {}
    async with http.get(control) as resp:
        assert (await resp.json())["global"]["rate_limit_per_minute"] == 100_000


def test_invalid_chaos_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        ChaosSettings(error_rate=1.5)
