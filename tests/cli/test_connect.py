"""`patchwire connection connect`: OAuth2 consent from a terminal, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from patchwire.sandbox import Sandbox
from tests.support.cli import COMMAND_TIMEOUT_S, Cli, patchwire_command
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET, oauth_connector

#: slow (the patchwire command in subprocesses): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow


@pytest.fixture
async def oauth_sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(seed=0) as sandbox:
        yield sandbox


async def test_connect_prints_the_url_stores_tokens_and_calls_work(
    tmp_path: Path, oauth_sandbox: Sandbox
) -> None:
    cli = Cli(tmp_path)
    spec = oauth_connector().model_dump(by_alias=True, mode="json", exclude_defaults=True)
    (cli.connectors / "oauthy.yaml").write_text(yaml.safe_dump(spec))
    proc = await asyncio.create_subprocess_exec(
        *patchwire_command(), "connection", "connect", "oauthy", "--name", "acme",
        "--set", f"sandbox_url={oauth_sandbox.url}", "--set", f"client_id={CLIENT_ID}",
        "--set-env", "client_secret=OAUTH_SECRET", "--timeout", "20",
        cwd=tmp_path, env={**cli.env, "OAUTH_SECRET": CLIENT_SECRET},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        url = ""
        while not url.startswith("http"):
            line = await asyncio.wait_for(proc.stdout.readline(), COMMAND_TIMEOUT_S)
            assert line, "the command ended before printing the authorize URL"
            url = line.decode().strip()
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
            assert "connected" in await resp.text()
        out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "connected acme" in " ".join(out.decode().split())
    called = await cli("call", "oauthy.me", "--connection", "acme")
    assert called.code == 0, called
    assert oauth_sandbox.state.oauth.stats.token_requests["authorization_code"] == 1
    listed = await cli("connection", "show", "acme")
    assert CLIENT_SECRET not in listed.out
    for file in cli.home.rglob("*"):
        if file.is_file():
            assert CLIENT_SECRET.encode() not in file.read_bytes()
