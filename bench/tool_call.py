"""Tool calls through MCP (Streamable HTTP) against direct ``pw.call``, in one run.

The sandbox runs in its own process, and so does ``patchwire serve`` (the MCP endpoint at
``/mcp``), as in production. The bench process drives both paths against the same sandbox
action (``shop.get_order``): MCP through one SDK client session (``tools/call
shop_get_order`` with N calls in flight), and ``pw.call`` directly. An MCP tool call does
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
from pathlib import Path

import aiohttp
from mcp import Client
from mcp_types.version import LATEST_MODERN_VERSION

from _common import free_port, start_sandbox
from patchwire import Patchwire, Settings
from patchwire.sandbox import SANDBOX_CREDENTIALS

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


async def main(calls: int, rounds: int) -> dict[str, float]:
    sandbox, sandbox_url = start_sandbox()
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            settings = Settings(home=home, connector_paths=(), allow_networks=("127.0.0.1",))
            async with Patchwire(settings) as pw:
                await pw.add_connection("shop", "bench", {"sandbox_url": sandbox_url,
                                                          **SANDBOX_CREDENTIALS["shop"]})

                async def direct() -> object:
                    return await pw.call("shop.get_order", {"order_id": "42"},
                                         connection="bench")

                with serving(home) as url:
                    await wait_healthy(url)
                    for era, mode in (("handshake", "legacy"), ("modern", LATEST_MODERN_VERSION)):
                        async with Client(f"{url}/mcp", mode=mode, cache=None) as client:

                            async def mcp() -> object:
                                result = await client.call_tool("shop_get_order",
                                                                {"order_id": "42"})
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
            "ratio": round(mcp_rate / direct_rate, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (< 30 s)")
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args()
    calls = args.calls or (600 if args.quick else 4_000)
    result = asyncio.run(main(calls, rounds=6))
    print(json.dumps(result))
