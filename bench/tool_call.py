"""Tool calls through MCP (Streamable HTTP) against direct ``pw.call``, in one run.

The sandbox runs in its own process, and so does ``patchwire serve`` (the MCP endpoint at
``/mcp``), as in production. The bench process drives both paths against the same sandbox
action (``shop.get_order``): MCP through one SDK client session (``tools/call
shop_get_order`` with N calls in flight), and ``pw.call`` directly. The server holds keys,
so every MCP request carries one: an operator's API key (``pwk_``), and — the end-user
variant — an end user's token (``pwu_``), whose catalog and calls are that end user's
only; the two alternate in chunks, and the end-user rate is reported as a ratio of the
operator's. An MCP tool call does
everything a model's call does: JSON-RPC over HTTP with SSE responses, argument validation,
the call path, result shaping and the tool audit. Chunks of both alternate so drift on a
shared machine hits both alike. The last line of output is one JSON object of the figures.

    python bench/tool_call.py            # 4,000 calls per path and era
    python bench/tool_call.py --quick    # under 30 s, same output shape
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.version import LATEST_MODERN_VERSION

from _common import free_port, start_sandbox
from patchwire import Patchwire, Settings
from patchwire.sandbox import SANDBOX_CREDENTIALS
from patchwire.store.end_users import EndUserTokenRepository
from patchwire.store.keys import KeyRepository

#: bound on a child process starting
START_TIMEOUT_S = 30.0
CONCURRENCY = 16


@contextlib.contextmanager
def serving(home: Path) -> Iterator[str]:
    """``patchwire serve`` on a free loopback port over the store in ``home``."""
    port = free_port()
    env = {**os.environ, "PATCHWIRE_HOME": str(home), "PATCHWIRE_ALLOW_NETWORKS": "127.0.0.1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from patchwire.cli import main; main()", "serve",
         "--port", str(port)], env=env, cwd=home, stdout=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(START_TIMEOUT_S):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)  # bounded by the timeout above


async def drive(n: int, concurrency: int, one: Callable[[], Awaitable[object]]) -> float:
    """Run ``n`` calls with ``concurrency`` workers; return calls per second."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


def mcp_client(url: str, mode: str, credential: str) -> Client:
    """An MCP client session sending ``credential`` (a key or an end-user token)."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {credential}"},
                              timeout=httpx2.Timeout(30.0, read=300.0))
    return Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode,
                  cache=None)


async def tool_named(client: Client, target_connection: str | None) -> str:
    """The name under which ``shop.get_order`` is offered to this client (an operator with
    several shop connections sees each connection's tools under its own prefix)."""
    names = [t.name for t in (await client.list_tools()).tools]
    if target_connection is not None and f"{target_connection}_shop_get_order" in names:
        return f"{target_connection}_shop_get_order"
    assert "shop_get_order" in names, names
    return "shop_get_order"


async def identities(url: str, calls: int, rounds: int, operator_key: str,
                     end_user_token: str) -> dict[str, float]:
    """The operator's key against an end user's token, over MCP (handshake era), their
    chunks alternating."""
    async with (mcp_client(url, "legacy", operator_key) as operator,
                mcp_client(url, "legacy", end_user_token) as end_user):
        operator_tool = await tool_named(operator, "bench")
        end_user_tool = await tool_named(end_user, None)

        def caller(client: Client, tool: str) -> Callable[[], Awaitable[object]]:
            async def one() -> object:
                result = await client.call_tool(tool, {"order_id": "42"})
                if result.is_error:
                    raise RuntimeError(f"tool call failed: {result.content}")
                return result.structured_content
            return one

        as_operator, as_end_user = caller(operator, operator_tool), caller(end_user,
                                                                            end_user_tool)
        await drive(100, 8, as_operator)
        await drive(100, 8, as_end_user)
        chunk = max(calls // rounds, CONCURRENCY)
        spent_operator = spent_end_user = 0.0
        for round_ in range(rounds):
            # which goes first alternates too: neither always follows the other's chunk
            if round_ % 2:
                spent_end_user += chunk / await drive(chunk, CONCURRENCY, as_end_user)
                spent_operator += chunk / await drive(chunk, CONCURRENCY, as_operator)
            else:
                spent_operator += chunk / await drive(chunk, CONCURRENCY, as_operator)
                spent_end_user += chunk / await drive(chunk, CONCURRENCY, as_end_user)
    operator_rate = chunk * rounds / spent_operator
    end_user_rate = chunk * rounds / spent_end_user
    print(f"operator key {operator_rate:8.1f} tool calls/s   end-user token "
          f"{end_user_rate:8.1f} tool calls/s   ratio {end_user_rate / operator_rate:.3f}",
          flush=True)
    return {"mcp_operator_key_calls_per_s": round(operator_rate, 1),
            "mcp_end_user_calls_per_s": round(end_user_rate, 1),
            "end_user_ratio": round(end_user_rate / operator_rate, 3)}


async def main(calls: int, rounds: int) -> dict[str, float]:
    sandbox, sandbox_url = start_sandbox()
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            settings = Settings(home=home, connector_paths=(), allow_networks=("127.0.0.1",))
            async with Patchwire(settings) as pw:
                shop = {"sandbox_url": sandbox_url, **SANDBOX_CREDENTIALS["shop"]}
                await pw.add_connection("shop", "bench", shop)
                await pw.add_connection("shop", "u1-shop", shop, end_user="u1")
                _, operator_key = await KeyRepository(pw.store).create("bench", ["admin"])
                _, end_user_token = await EndUserTokenRepository(pw.store).create(
                    "u1", ttl=timedelta(hours=2))

                async def direct() -> object:
                    return await pw.call("shop.get_order", {"order_id": "42"},
                                         connection="bench")

                with serving(home) as url:
                    await wait_healthy(url)
                    figures.update(await identities(url, calls, rounds, operator_key,
                                                    end_user_token))
                    for era, mode in (("handshake", "legacy"), ("modern", LATEST_MODERN_VERSION)):
                        async with mcp_client(url, mode, operator_key) as client:
                            tool = await tool_named(client, "bench")

                            async def mcp(tool: str = tool) -> object:
                                result = await client.call_tool(tool, {"order_id": "42"})
                                if result.is_error:
                                    raise RuntimeError(f"tool call failed: {result.content}")
                                return result.structured_content

                            await drive(100, 8, mcp)  # warm both paths
                            await drive(100, 8, direct)
                            chunk = max(calls // rounds, CONCURRENCY)
                            spent_mcp = spent_direct = 0.0
                            for _ in range(rounds):
                                spent_mcp += chunk / await drive(chunk, CONCURRENCY, mcp)
                                spent_direct += chunk / await drive(chunk, CONCURRENCY, direct)
                        mcp_rate = chunk * rounds / spent_mcp
                        direct_rate = chunk * rounds / spent_direct
                        figures[f"mcp_{era}"] = round(mcp_rate, 1)
                        figures[f"direct_{era}"] = round(direct_rate, 1)
                        print(f"{era:>9} era, {CONCURRENCY} in flight: MCP {mcp_rate:8.1f} "
                              f"tool calls/s   direct pw.call {direct_rate:8.1f} calls/s   "
                              f"ratio {mcp_rate / direct_rate:.3f}", flush=True)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    # The headline is the handshake era: what today's clients (and the Inspector) speak.
    mcp_rate, direct_rate = figures["mcp_handshake"], figures["direct_handshake"]
    return {"mcp_calls_per_s": mcp_rate, "direct_calls_per_s": direct_rate,
            "ratio": round(mcp_rate / direct_rate, 3),
            **{k: figures[k] for k in ("mcp_operator_key_calls_per_s",
                                       "mcp_end_user_calls_per_s", "end_user_ratio")}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (< 30 s)")
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args()
    calls = args.calls or (600 if args.quick else 4_000)
    result = asyncio.run(main(calls, rounds=6))
    print(json.dumps(result))
