"""The MCP server (``patchwire.tools._mcp``) driven by the official SDK's client.

Three transports: in memory (the SDK's in-process paths, both protocol eras), Streamable
HTTP on ``patchwire serve``'s app (uvicorn on 127.0.0.1), and stdio (``patchwire mcp`` as
a subprocess). The sandbox shop accepts only a canary key, so every error text can be
searched for it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from patchwire.server import create_app
from patchwire.tools._invoke import ToolInvoker
from patchwire.tools._mcp import build_server
from tests.support.cli import patchwire_command
from tests.support.leaks import leaks_in, new_canary
from tests.support.mcp import CONFIRM_TOOL, Env
from tests.support.servers import serving
from tests.support.settings import LOOPBACK

#: bound on every test's MCP conversation (no test waits on a sleep)
TIMEOUT_S = 30.0
#: the handshake era (standalone elicitation/create) and 2026-07-28 (InputRequiredResult)
ERAS = [pytest.param("legacy", id="handshake"), pytest.param(LATEST_MODERN_VERSION, id="modern")]


@dataclass
class Person:
    """An elicitation callback standing in for the person at the client."""

    answer: types.ElicitResult
    asked: list[str] = field(default_factory=list)

    async def __call__(self, context: ClientRequestContext,
                       params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        assert params.requested_schema["properties"]["approve"]["type"] == "boolean"
        self.asked.append(params.message)
        return self.answer


def approves() -> Person:
    return Person(types.ElicitResult(action="accept", content={"approve": True}))


def text_of(result: types.CallToolResult) -> str:
    assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent)
    return result.content[0].text


async def order_status(env: Env) -> str:
    order = await env.pw.call("shop.get_order", {"order_id": env.order_id}, connection="acme")
    return str(order["status"])


async def status_changes(env: Env) -> int:
    """How many times the call path ran shop.update_order_status."""
    await env.pw.flush()
    return len(await env.pw.recent_calls(action="shop.update_order_status"))


def server_for(env: Env, **kwargs: Any) -> Server[Any]:
    return build_server(ToolInvoker(env.pw, connections=["acme"], **kwargs))


# -- in memory, both eras --------------------------------------------------------------------

@pytest.mark.parametrize("mode", ERAS)
async def test_tools_list_offers_sandbox_tools_with_annotations(env: Env, mode: str) -> None:
    async with asyncio.timeout(TIMEOUT_S), Client(server_for(env), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    get_order, update = tools["shop_get_order"], tools[CONFIRM_TOOL]
    assert get_order.input_schema["properties"]["order_id"]["type"] == "string"
    assert get_order.input_schema["required"] == ["order_id"]
    assert get_order.annotations is not None and update.annotations is not None
    assert get_order.annotations.read_only_hint is True
    assert get_order.annotations.destructive_hint is False
    assert get_order.annotations.idempotent_hint is True
    assert update.annotations.read_only_hint is False
    assert update.annotations.destructive_hint is True
    assert get_order.title and get_order.description


@pytest.mark.parametrize("mode", ERAS)
async def test_a_call_returns_the_result_as_text_and_structured_content(
    env: Env, mode: str,
) -> None:
    async with asyncio.timeout(TIMEOUT_S), Client(server_for(env), mode=mode) as client:
        result = await client.call_tool("shop_get_order", {"order_id": env.order_id})
    assert result.is_error is False
    assert result.structured_content is not None
    assert result.structured_content["id"] == env.order_id
    assert f'"id":"{env.order_id}"' in text_of(result).replace(" ", "")


@pytest.mark.parametrize("mode", ERAS)
async def test_invalid_arguments_are_an_error_result_naming_the_field(
    env: Env, mode: str,
) -> None:
    async with asyncio.timeout(TIMEOUT_S), Client(server_for(env), mode=mode) as client:
        result = await client.call_tool("shop_get_order", {"order_id": 42})
        missing = await client.call_tool("shop_get_order", {})
    assert result.is_error is True and result.structured_content is None
    assert "order_id" in text_of(result) and "string" in text_of(result)
    assert missing.is_error is True and "order_id" in text_of(missing)


@pytest.mark.parametrize("mode", ERAS)
async def test_an_unknown_tool_is_an_error_result_listing_the_tools(env: Env, mode: str) -> None:
    async with asyncio.timeout(TIMEOUT_S), Client(server_for(env), mode=mode) as client:
        result = await client.call_tool("shop_drop_tables", {})
    assert result.is_error is True
    assert "shop_drop_tables" in text_of(result) and "shop_get_order" in text_of(result)


@pytest.mark.parametrize("mode", ERAS)
async def test_upstream_errors_are_model_readable_and_never_hold_the_secret(
    env: Env, mode: str,
) -> None:
    wrong_key = new_canary("wrongkey")
    await env.pw.add_connection("shop", "stale",
                                {"sandbox_url": env.sandbox.url, "api_key": wrong_key})
    stale = build_server(ToolInvoker(env.pw, connections=["stale"]))
    async with asyncio.timeout(TIMEOUT_S):
        async with Client(server_for(env), mode=mode) as client:
            missing = await client.call_tool("shop_get_order", {"order_id": "999999"})
        async with Client(stale, mode=mode) as client:
            refused = await client.call_tool("shop_get_order", {"order_id": env.order_id})
    assert missing.is_error is True
    assert "not_found" in text_of(missing) and "999999" in text_of(missing)
    assert refused.is_error is True
    assert "credentials" in text_of(refused) and "'stale'" in text_of(refused)
    for result in (missing, refused):
        wire = result.model_dump_json(by_alias=True)
        assert leaks_in(wire, env.canary) == []
        assert leaks_in(wire, wrong_key) == []
        assert "Traceback" not in wire


@pytest.mark.parametrize("mode", ERAS)
async def test_an_exception_in_a_handler_never_reaches_the_client(
    env: Env, mode: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"database password is {env.canary}")

    server = server_for(env)
    async with asyncio.timeout(TIMEOUT_S), Client(server, mode=mode) as client:
        monkeypatch.setattr(ToolInvoker, "invoke", explode)
        result = await client.call_tool("shop_get_order", {"order_id": env.order_id})
        monkeypatch.setattr(ToolInvoker, "catalog", explode)
        with pytest.raises(MCPError) as listing:
            await client.list_tools()
    assert result.is_error is True
    assert "internal error" in text_of(result) and "reference" in text_of(result)
    assert leaks_in(result.model_dump_json(by_alias=True), env.canary) == []
    assert leaks_in(str(listing.value), env.canary) == []
    assert "could not list" in str(listing.value)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_confirm_tool_asks_the_person_and_runs_when_approved(
    env: Env, mode: str,
) -> None:
    person = approves()
    async with (asyncio.timeout(TIMEOUT_S),
                Client(server_for(env), mode=mode, elicitation_callback=person) as client):
        result = await client.call_tool(CONFIRM_TOOL,
                                        {"order_id": env.order_id, "status": "cancelled"})
    assert result.is_error is False, text_of(result)
    assert len(person.asked) == 1
    question = person.asked[0]
    assert "shop.update_order_status" in question and "'acme'" in question
    assert env.order_id in question and "cancelled" in question
    assert await order_status(env) == "cancelled"
    assert await status_changes(env) == 1
    [approval] = await ToolInvoker(env.pw).repository.list_approvals()
    assert approval.status == "used" and approval.decided_by is not None
    assert approval.decided_by.startswith("mcp elicitation")


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("answer", [
    pytest.param(types.ElicitResult(action="decline"), id="decline"),
    pytest.param(types.ElicitResult(action="cancel"), id="cancel"),
    pytest.param(types.ElicitResult(action="accept", content={"approve": False,
                                                              "reason": "not today"}),
                 id="accept-but-no"),
])
async def test_a_confirm_tool_does_not_run_unless_the_person_approves(
    env: Env, mode: str, answer: types.ElicitResult,
) -> None:
    person = Person(answer)
    async with (asyncio.timeout(TIMEOUT_S),
                Client(server_for(env), mode=mode, elicitation_callback=person) as client):
        result = await client.call_tool(CONFIRM_TOOL,
                                        {"order_id": env.order_id, "status": "cancelled"})
    assert len(person.asked) == 1
    assert result.is_error is True
    assert "denied" in text_of(result) and "not run" in text_of(result)
    if answer.content:
        assert "not today" in text_of(result)
    assert await order_status(env) == "pending"
    assert await status_changes(env) == 0


@pytest.mark.parametrize("mode", ERAS)
async def test_without_elicitation_a_confirm_tool_is_left_pending_approval(
    env: Env, mode: str,
) -> None:
    async with asyncio.timeout(TIMEOUT_S), Client(server_for(env), mode=mode) as client:
        result = await client.call_tool(CONFIRM_TOOL,
                                        {"order_id": env.order_id, "status": "cancelled"})
    assert result.is_error is True
    assert "approval" in text_of(result) and "pending" in text_of(result)
    [approval] = await ToolInvoker(env.pw).repository.list_approvals()
    assert approval.status == "pending" and approval.id in text_of(result)
    assert await status_changes(env) == 0


async def test_modern_round_trip_state_is_bound_to_the_call(env: Env) -> None:
    """The approval id rides a sealed requestState: replaying it for other arguments (a
    bigger refund, another order) is refused by the SDK's boundary, nothing runs."""
    args = {"order_id": env.order_id, "status": "cancelled"}
    answer = {"patchwire_approval": types.ElicitResult(action="accept",
                                                       content={"approve": True})}
    person = approves()  # declares elicitation; this test answers by hand
    async with (asyncio.timeout(TIMEOUT_S),
                Client(server_for(env), mode=LATEST_MODERN_VERSION,
                       elicitation_callback=person) as client):
        first = await client.session.call_tool(CONFIRM_TOOL, args, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult)
        assert first.input_requests is not None and "patchwire_approval" in first.input_requests
        assert first.request_state is not None and "approval" not in first.request_state
        with pytest.raises(MCPError, match="requestState"):
            await client.session.call_tool(CONFIRM_TOOL, {**args, "status": "paid"},
                                           input_responses=answer,
                                           request_state=first.request_state)
        with pytest.raises(MCPError, match="requestState"):
            await client.session.call_tool(CONFIRM_TOOL, args, input_responses=answer,
                                           request_state=first.request_state + "x")
        assert await status_changes(env) == 0
        done = await client.session.call_tool(CONFIRM_TOOL, args, input_responses=answer,
                                              request_state=first.request_state)
    assert isinstance(done, types.CallToolResult) and done.is_error is False
    assert person.asked == []
    assert await order_status(env) == "cancelled"


async def test_tool_calls_are_audited_under_the_connection_session(env: Env) -> None:
    invoker = ToolInvoker(env.pw, connections=["acme"])
    async with (asyncio.timeout(TIMEOUT_S),
                Client(build_server(invoker, session_id="mcp-test-1"), mode="legacy") as client):
        await client.call_tool("shop_get_order", {"order_id": env.order_id})
    [call] = await invoker.tool_calls(session_id="mcp-test-1")
    assert call.tool == "shop_get_order" and call.status == "ok"


async def test_filters_narrow_the_offered_tools(env: Env) -> None:
    from patchwire.tools import ToolFilter

    server = server_for(env, filter=ToolFilter(read_only=True))
    async with asyncio.timeout(TIMEOUT_S), Client(server, mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert "shop_get_order" in names and CONFIRM_TOOL not in names


# -- Streamable HTTP on the server app -----------------------------------------------------


@pytest.mark.parametrize("mode", ERAS)
async def test_streamable_http_lists_calls_and_confirms(
    env: Env, mcp_url: str, mode: str,
) -> None:
    person = approves()
    async with (asyncio.timeout(TIMEOUT_S),
                Client(mcp_url, mode=mode, elicitation_callback=person) as client):
        names = {t.name for t in (await client.list_tools()).tools}
        got = await client.call_tool("shop_get_order", {"order_id": env.order_id})
        bad = await client.call_tool("shop_get_order", {"order_id": 7})
        done = await client.call_tool(CONFIRM_TOOL,
                                      {"order_id": env.order_id, "status": "cancelled"})
    assert {"shop_get_order", CONFIRM_TOOL} <= names
    assert got.is_error is False and got.structured_content is not None
    assert got.structured_content["id"] == env.order_id
    assert bad.is_error is True and "order_id" in text_of(bad)
    assert done.is_error is False and len(person.asked) == 1
    assert await order_status(env) == "cancelled"
    assert env.server is not None  # the audit is written in batches by the server's Patchwire
    calls = await ToolInvoker(env.server).tool_calls()
    sessions = {c.session_id for c in calls}
    if mode == "legacy":  # the MCP session id of the HTTP session
        assert len(sessions) == 1 and None not in sessions
    else:  # a 2026-07-28 request belongs to no session
        assert sessions == {None}


async def test_streamable_http_without_elicitation_leaves_the_call_pending(
    env: Env, mcp_url: str,
) -> None:
    async with asyncio.timeout(TIMEOUT_S), Client(mcp_url, mode="legacy") as client:
        result = await client.call_tool(CONFIRM_TOOL,
                                        {"order_id": env.order_id, "status": "cancelled"})
    assert result.is_error is True and "pending" in text_of(result)
    assert await status_changes(env) == 0


async def test_the_endpoint_serves_again_after_the_app_restarts(env: Env) -> None:
    app = create_app(env.pw, manage_lifecycle=False)
    for _ in range(2):
        async with (asyncio.timeout(TIMEOUT_S), serving(app) as url,
                    Client(f"{url}/mcp", mode="legacy") as client):
            assert "shop_get_order" in {t.name for t in (await client.list_tools()).tools}


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": {},
    "clientInfo": {"name": "curl", "version": "1"}}}
MODERN_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
    "io.modelcontextprotocol/protocolVersion": LATEST_MODERN_VERSION,
    "io.modelcontextprotocol/clientCapabilities": {}}}}


@pytest.mark.parametrize(("headers", "status"), [
    pytest.param({}, 200, id="own-host"),
    pytest.param({"Host": "localhost:{port}"}, 200, id="localhost"),
    pytest.param({"Origin": "http://127.0.0.1:{port}"}, 200, id="own-origin"),
    pytest.param({"Host": "evil.example:{port}"}, 421, id="rebound-host"),
    pytest.param({"Host": "127.0.0.1:1"}, 421, id="other-port-host"),
    pytest.param({"Origin": "http://evil.example"}, 403, id="foreign-origin"),
    pytest.param({"Origin": "http://localhost:1"}, 403, id="other-local-origin"),
])
@pytest.mark.parametrize("body", [pytest.param(INITIALIZE, id="handshake"),
                                  pytest.param(MODERN_LIST, id="modern")])
async def test_streamable_http_rejects_forged_host_and_origin(
    mcp_url: str, headers: dict[str, str], status: int, body: dict[str, Any],
) -> None:
    port = mcp_url.rsplit(":", 1)[1].split("/")[0]
    sent = {"Accept": "application/json, text/event-stream",
            **{k: v.format(port=port) for k, v in headers.items()}}
    if body is MODERN_LIST:
        sent.update({"MCP-Protocol-Version": LATEST_MODERN_VERSION, "Mcp-Method": "tools/list"})
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as http,
                http.post(mcp_url, json=body, headers=sent) as response):
        text = await response.text()
    assert response.status == status, text
    if status != 200:
        assert "Invalid" in text and "jsonrpc" not in text


# -- stdio: `patchwire mcp` as a subprocess ------------------------------------------------

def stdio_params(env: Env, cwd: Path, *args: str) -> StdioServerParameters:
    command, *prefix = patchwire_command()
    return StdioServerParameters(
        command=command, args=[*prefix, "mcp", *args], cwd=cwd,
        env={**os.environ, "PATCHWIRE_HOME": str(env.settings.home),
             "PATCHWIRE_ALLOW_NETWORKS": ",".join(LOOPBACK)})


@pytest.mark.slow  # patchwire mcp in a subprocess
@pytest.mark.parametrize("mode", ERAS)
async def test_stdio_serves_the_tools(env: Env, tmp_path: Path, mode: str) -> None:
    person = approves()
    params = stdio_params(env, tmp_path, "--connection", "acme", "--connector", "shop")
    async with (asyncio.timeout(TIMEOUT_S * 2),
                Client(params, mode=mode, elicitation_callback=person) as client):
        names = {t.name for t in (await client.list_tools()).tools}
        got = await client.call_tool("shop_get_order", {"order_id": env.order_id})
        done = await client.call_tool(CONFIRM_TOOL,
                                      {"order_id": env.order_id, "status": "cancelled"})
    assert "shop_get_order" in names and all(n.startswith("shop_") for n in names)
    assert got.is_error is False and got.structured_content is not None
    assert done.is_error is False and len(person.asked) == 1
    assert await order_status(env) == "cancelled"
    calls = await ToolInvoker(env.pw).tool_calls()
    assert {c.session_id is not None and c.session_id.startswith("mcp-stdio-") for c in calls} \
        == {True}


@pytest.mark.slow  # patchwire mcp in a subprocess
async def test_stdio_refuses_an_unknown_connection_on_stderr(env: Env, tmp_path: Path) -> None:
    params = stdio_params(env, tmp_path, "--connection", "nobody")
    proc = await asyncio.create_subprocess_exec(
        params.command, *params.args, cwd=tmp_path, env=params.env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(TIMEOUT_S):
        out, err = await proc.communicate()
    assert proc.returncode == 1
    assert out == b""  # stdout is the protocol: nothing else may appear there
    assert b"nobody" in err
