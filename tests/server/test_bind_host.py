"""The name ``patchwire serve --host NAME`` binds is a name of this server: the Host
allow-list (SiteGuard) accepts it without ``allowed_hosts`` repeating it.

The command runs in this process (typer's runner) with uvicorn's ``serve`` wrapped: the
name given on the command line resolves nowhere here, so the wrapper records it and binds
127.0.0.1 instead, then sends real requests naming it in ``Host``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn
from typer.testing import CliRunner

import patchwire.observability
from patchwire import Patchwire
from patchwire.cli import app
from patchwire.store.keys import KeyRepository
from tests.support.servers import SERVER_TIMEOUT_S
from tests.support.settings import local_settings

BIND_NAME = "myhost.internal"


async def _admin_key(home: Path) -> str:
    async with Patchwire(local_settings(home)) as pw:
        _, key = await KeyRepository(pw.store).create("ops", ["admin"])
    return key


def test_serve_accepts_the_host_name_it_was_told_to_bind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    # a name other than loopback needs an admin key before serve binds it
    key = asyncio.run(_admin_key(home))
    for name in [n for n in os.environ if n.startswith("PATCHWIRE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PATCHWIRE_HOME", str(home))
    monkeypatch.setenv("PATCHWIRE_CONNECTOR_PATHS", str(tmp_path / "connectors"))
    monkeypatch.chdir(tmp_path)  # no patchwire.toml, flows/ or syncs/ of the repository
    # the process's logging is pytest's
    monkeypatch.setattr(patchwire.observability, "configure_logging", lambda: None)

    seen: dict[str, Any] = {}
    serve = uvicorn.Server.serve

    async def serve_on_loopback(server: uvicorn.Server, sockets: Any = None) -> None:
        seen["bind"] = server.config.host
        server.config.host, server.config.port = "127.0.0.1", 0
        task = asyncio.create_task(serve(server))
        async with asyncio.timeout(SERVER_TIMEOUT_S):
            while not server.started:  # bounded by the timeout above
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn exited before it started serving")
                await asyncio.sleep(0.005)
        port = seen["port"] = server.servers[0].sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=10)) as http:
                for host in (BIND_NAME, f"{BIND_NAME}:{port}", "other.internal"):
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/connections",
                                        headers={"Host": host,
                                                 "Authorization": f"Bearer {key}"}) as resp:
                        seen[host] = (resp.status, await resp.text())
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, SERVER_TIMEOUT_S)

    monkeypatch.setattr(uvicorn.Server, "serve", serve_on_loopback)

    result = CliRunner().invoke(app, ["serve", "--host", BIND_NAME, "--port", "8601"])

    assert result.exit_code == 0, (result.output, result.exception)
    assert seen["bind"] == BIND_NAME
    assert seen[BIND_NAME] == (200, "[]")
    assert seen[f"{BIND_NAME}:{seen['port']}"][0] == 200
    # only that name: another one is still a rebinding page's
    assert seen["other.internal"][0] == 421, seen["other.internal"]

