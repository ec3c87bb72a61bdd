"""``/mcp`` with end-user tokens (Streamable HTTP, the official SDK's client) and
``patchwire mcp --end-user`` (stdio): each end user lists and calls their own tools only, a
session is its opener's alone, and an account not connected answers with a connect link."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from patchwire import Patchwire, ToolInvoker
from patchwire.sandbox import Sandbox
from tests.support.cli import patchwire_command
from tests.support.end_users import Served, bearer, served, shop_connections
from tests.support.settings import LOOPBACK, local_settings

#: bound on every MCP conversation
TIMEOUT_S = 30.0
ERAS = [pytest.param("legacy", id="handshake"), pytest.param(LATEST_MODERN_VERSION, id="modern")]


@pytest.fixture
async def api(store_url: str, tmp_path: Path, sandbox: Sandbox,
              canary: str) -> AsyncIterator[Served]:
    async with served(store_url, tmp_path / "home", sandbox, canary,
                      end_users=("u1", "u2", "u3")) as running:
        yield running


def client(api: Served, token: str, mode: str) -> Client:
    http = httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(TIMEOUT_S))
    return Client(streamable_http_client(api.at("/mcp"), http_client=http), mode=mode,
                  cache=None)


def text_of(result: types.CallToolResult) -> str:
    assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent)
    return result.content[0].text


def an_order(api: Served) -> str:
    return next(iter(api.sandbox.state.apis["shop"].orders))  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ERAS)
async def test_each_end_user_lists_and_calls_their_own_tools_over_http(
        api: Served, mode: str) -> None:
    order = an_order(api)
    async with asyncio.timeout(TIMEOUT_S):
        async with client(api, api.tokens["u1"], mode) as u1:
            names = {t.name for t in (await u1.list_tools()).tools}
            got = await u1.call_tool("shop_get_order", {"order_id": order})
            injected = await u1.call_tool("shop_get_order",
                                          {"order_id": order, "connection": "u2-shop"})
        async with client(api, api.tokens["u2"], mode) as u2:
            await u2.call_tool("shop_get_order", {"order_id": order})
    assert "shop_get_order" in names
    assert not any(part in name for name in names for part in ("u1", "u2", "acme"))
    assert got.is_error is False and got.structured_content is not None
    assert got.structured_content["id"] == order
    assert injected.is_error is True and "connection" in text_of(injected)
    await api.pw.flush()
    assert [c.connection for c in reversed(await api.pw.recent_calls())] == [
        "u1-shop", "u2-shop"]
    audit = await ToolInvoker(api.pw).tool_calls()
    assert sorted((c.end_user, c.connection, c.status) for c in audit) == [
        ("u1", "u1-shop", "invalid_arguments"), ("u1", "u1-shop", "ok"),
        ("u2", "u2-shop", "ok")]


async def test_an_unconnected_account_answers_with_a_connect_link_over_http(
        api: Served) -> None:
    async with asyncio.timeout(TIMEOUT_S), client(api, api.tokens["u3"], "legacy") as u3:
        names = {t.name for t in (await u3.list_tools()).tools}
        result = await u3.call_tool("shop_get_order", {"order_id": an_order(api)})
    assert "shop_get_order" in names  # listed all the same
    assert result.is_error is True
    text = text_of(result)
    link = text.split("Open this link to connect it: ", 1)[1].split('"', 1)[0]
    session = await api.connect_session(link)
    assert (session["status"], session["end_user"], session["connectors"]) == (
        "pending", "u3", ["shop"])


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
    "clientInfo": {"name": "curl", "version": "1"}}}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
ACCEPT = {"Accept": "application/json, text/event-stream"}


async def post(api: Served, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, str,
                                                                                    str | None]:
    async with api.http.post(api.at("/mcp"), json=body, headers={**ACCEPT, **headers}) as resp:
        return resp.status, await resp.text(), resp.headers.get("mcp-session-id")


async def test_a_session_is_usable_by_the_end_user_who_opened_it_only(api: Served) -> None:
    u1 = bearer(api.tokens["u1"])
    status, _, session = await post(api, INITIALIZE, u1)
    assert status == 200 and session
    opened = {"mcp-session-id": session, "mcp-protocol-version": LATEST_HANDSHAKE_VERSION}
    status, _, _ = await post(api, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                              {**u1, **opened})
    assert status == 202
    # another end user, and the operator, presenting u1's session id: no such session
    for other in (bearer(api.tokens["u2"]), {}):
        status, text, _ = await post(api, LIST, {**other, **opened})
        assert status == 404, text
        assert "shop_get_order" not in text
    status, text, _ = await post(api, LIST, {**u1, **opened})
    assert status == 200 and "shop_get_order" in text


async def test_a_session_opened_by_the_operator_is_not_an_end_users(api: Served) -> None:
    status, _, session = await post(api, INITIALIZE, {})
    assert status == 200 and session
    opened = {"mcp-session-id": session, "mcp-protocol-version": LATEST_HANDSHAKE_VERSION}
    status, text, _ = await post(api, LIST, {**bearer(api.tokens["u1"]), **opened})
    assert status == 404, text


# -- stdio: `patchwire mcp --end-user` as a subprocess -------------------------------------


def stdio_params(home: Path, cwd: Path, *args: str) -> StdioServerParameters:
    command, *prefix = patchwire_command()
    return StdioServerParameters(
        command=command, args=[*prefix, "mcp", *args], cwd=cwd,
        env={**os.environ, "PATCHWIRE_HOME": str(home),
             "PATCHWIRE_ALLOW_NETWORKS": ",".join(LOOPBACK)})


@pytest.mark.slow  # patchwire mcp in a subprocess
async def test_stdio_serves_one_end_users_tools(tmp_path: Path, sandbox: Sandbox,
                                                canary: str) -> None:
    settings = local_settings(tmp_path / "home")
    await shop_connections(settings, sandbox, canary)
    order = next(iter(sandbox.state.apis["shop"].orders))  # type: ignore[attr-defined]
    params = stdio_params(settings.home, tmp_path, "--end-user", "u2")
    async with asyncio.timeout(TIMEOUT_S * 2), Client(params, mode="legacy") as u2:
        names = {t.name for t in (await u2.list_tools()).tools}
        got = await u2.call_tool("shop_get_order", {"order_id": order})
    assert "shop_get_order" in names
    assert not any(part in name for name in names for part in ("u1", "u2", "acme"))
    assert got.is_error is False
    async with Patchwire(settings) as pw:
        assert [c.connection for c in await pw.recent_calls()] == ["u2-shop"]
        assert [(c.end_user, c.connection) for c in await ToolInvoker(pw).tool_calls()] == [
            ("u2", "u2-shop")]


@pytest.mark.slow  # patchwire mcp in a subprocess
async def test_stdio_refuses_an_invalid_end_user_or_one_with_a_connection(
        tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "home")
    for args in (["--end-user", " u1"], ["--end-user", "u1", "--connection", "acme"]):
        params = stdio_params(settings.home, tmp_path, *args)
        proc = await asyncio.create_subprocess_exec(
            params.command, *params.args, cwd=tmp_path, env=params.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(TIMEOUT_S):
            out, err = await proc.communicate()
        assert proc.returncode == 2, err
        assert out == b""  # stdout is the protocol
        assert b"--end-user" in err
