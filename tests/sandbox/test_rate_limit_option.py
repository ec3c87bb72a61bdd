"""The sandbox's per-credential rate limit, set at start for the load a benchmark makes."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from patchwire.sandbox import ChaosSettings, Sandbox, auth_headers
from tests.support.cli import Cli, running

#: slow (the sandbox command in subprocesses): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow


async def test_python_m_sandbox_rate_limit_sets_the_per_credential_limit() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "patchwire.sandbox", "--port", "0", "--rate-limit", "2",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        statuses = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for _ in range(3):
                async with http.get(f"{url}/shop/products", headers=auth_headers("shop")) as r:
                    statuses.append(r.status)
                    assert r.headers["X-RateLimit-Limit"] == "2"
            async with http.get(f"{url}/_sandbox/chaos") as r:
                assert (await r.json())["global"]["rate_limit_per_minute"] == 2
        assert statuses == [200, 200, 429]
    finally:
        proc.kill()
        await proc.wait()


def test_python_m_sandbox_refuses_a_rate_limit_below_one_with_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "patchwire.sandbox", "--port", "0", "--rate-limit", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "--rate-limit must be at least 1, got 0" in done.stderr
    assert "Traceback" not in done.stderr


async def test_clearing_chaos_keeps_the_rate_limit_the_sandbox_started_with() -> None:
    async with (
        Sandbox(chaos=ChaosSettings(rate_limit_per_minute=5_000_000)) as sandbox,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        sandbox.set_chaos(error_rate=1.0, rate_limit_per_minute=3)
        sandbox.clear_chaos()
        assert sandbox.chaos.rate_limit_per_minute == 5_000_000
        assert sandbox.chaos.error_rate == 0.0
        sandbox.set_chaos(rate_limit_per_minute=3)
        async with http.delete(sandbox.url + "/_sandbox/chaos") as resp:
            assert (await resp.json())["global"]["rate_limit_per_minute"] == 5_000_000


async def test_patchwire_sandbox_rate_limit_sets_the_per_credential_limit(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path)
    async with running(cli, "sandbox", "--port", "0", "--rate-limit", "1") as proc:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        found = re.search(r"sandbox listening on (http://127\.0\.0\.1:\d+)", line)
        assert found, line
        statuses = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for _ in range(2):
                async with http.get(f"{found[1]}/shop/products",
                                    headers=auth_headers("shop")) as resp:
                    statuses.append(resp.status)
        assert statuses == [200, 429]


async def test_patchwire_sandbox_refuses_a_rate_limit_below_one(tmp_path: Path) -> None:
    result = await Cli(tmp_path)("sandbox", "--port", "0", "--rate-limit", "0")
    assert result.code == 2, result
    assert "Invalid value for '--rate-limit'" in result.flat_err
    assert "Traceback" not in result.err
