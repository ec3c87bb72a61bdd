"""The sandbox for a user's tests: ``async with sandbox() as url`` serves the four sandbox
APIs on loopback for the block, the ``patchwire_sandbox`` fixture for a test; and a
recording made against it (real HTTP) replays offline."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.http import HttpCore
from patchwire.testing import (
    SANDBOX_CREDENTIALS,
    MockTransport,
    RecordingTransport,
    Replay,
    Sandbox,
    sandbox,
)
from tests.support.settings import LOOPBACK, local_settings

TIMEOUT = aiohttp.ClientTimeout(total=10)


async def test_the_sandbox_serves_its_apis_for_the_block_and_stops_after() -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        async with sandbox() as url:
            headers = {"X-API-Key": SANDBOX_CREDENTIALS["shop"]["api_key"]}
            async with http.get(f"{url}/shop/orders/42", headers=headers) as resp:
                assert resp.status == 200
                assert (await resp.json())["id"] == "42"
        assert url.startswith("http://127.0.0.1:")
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(f"{url}/shop/orders/42", headers=headers):
                pass


async def test_the_sandbox_accepts_the_credentials_it_is_given() -> None:
    async with (aiohttp.ClientSession(timeout=TIMEOUT) as http,
                sandbox(credentials={"shop": {"api_key": "key-of-this-test"}}) as url):
        for key, status in (("key-of-this-test", 200),
                            (SANDBOX_CREDENTIALS["shop"]["api_key"], 401)):
            async with http.get(f"{url}/shop/orders/42", headers={"X-API-Key": key}) as resp:
                assert resp.status == status


async def test_the_patchwire_sandbox_fixture_is_a_running_sandbox(
        patchwire_sandbox: Sandbox) -> None:
    async with (aiohttp.ClientSession(timeout=TIMEOUT) as http,
                http.get(f"{patchwire_sandbox.url}/shop/orders/42",
                         headers={"X-API-Key": SANDBOX_CREDENTIALS["shop"]["api_key"]}) as resp):
        assert resp.status == 200


async def test_a_recording_of_real_calls_to_the_sandbox_replays_them_offline(
        tmp_path: Path) -> None:
    key = SANDBOX_CREDENTIALS["shop"]["api_key"]
    path = tmp_path / "shop.json"

    async with sandbox() as url:
        http = HttpCore(allow_networks=LOOPBACK)
        recorder = RecordingTransport.around(http)
        async with Patchwire(local_settings(tmp_path / "rec"), http=http) as pw:
            await pw.add_connection("shop", "acme", {"sandbox_url": url, "api_key": key})
            live = await pw.call("shop.get_order", {"order_id": "42"}, connection="acme")
        recorder.save(path)

    assert key not in path.read_text()
    replay = Replay(path)
    async with Patchwire(local_settings(tmp_path / "play"),
                         http=HttpCore(transport=MockTransport(replay))) as pw:
        await pw.add_connection("shop", "acme", {"sandbox_url": url, "api_key": key})
        replayed = await pw.call("shop.get_order", {"order_id": "42"}, connection="acme")

    assert replayed == live
    replay.assert_all_used()
