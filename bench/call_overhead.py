"""Call-path overhead: ``pw.call`` against a raw aiohttp loop doing the same requests.

The sandbox runs in a separate process (so its CPU is not ours); both loops send
``GET /shop/orders/42`` with the same auth header and parse the JSON body. Each
measurement alternates ten chunks of raw and patchwire calls and compares their total
times, so drift on a shared machine hits both alike. Patchwire runs with everything on:
validation, the SSRF guard, retries, limits, the breaker and the call log. Patchwire sends
ordinary requests over its own kept-alive HTTP/1.1 connections (``http/_wire.py``); the
``session`` figures are the same calls with that path off, every request going through
the aiohttp session. The last line of output is one JSON object of the figures.

    python bench/call_overhead.py            # 20,000 calls per measurement
    python bench/call_overhead.py --quick    # under 30 s, same output shape
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from _common import start_sandbox
from patchwire import Patchwire, Settings
from patchwire.sandbox import SANDBOX_CREDENTIALS, auth_headers


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
    proc, url = start_sandbox()
    figures: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as home:
            # the sandbox is on loopback, which the SSRF guard refuses unless allow-listed
            settings = Settings(home=Path(home), connector_paths=(), allow_networks=("127.0.0.1",))
            async with Patchwire(settings) as pw, aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256)
            ) as session:
                await pw.add_connection("shop", "bench", {"sandbox_url": url,
                                                          **SANDBOX_CREDENTIALS["shop"]})
                target = f"{url}/shop/orders/42"
                headers = {**auth_headers("shop"), "Accept": "application/json"}

                async def raw() -> object:
                    async with session.get(target, headers=headers) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"raw call failed: {resp.status}")
                        return json.loads(body)

                async def patchwire() -> object:
                    return await pw.call("shop.get_order", {"order_id": "42"},
                                         connection="bench")

                async def patchwire_session() -> object:
                    pw.runtime.http.wire = False
                    try:
                        return await pw.call("shop.get_order", {"order_id": "42"},
                                             connection="bench")
                    finally:
                        pw.runtime.http.wire = True

                await drive(200, 8, raw)  # warm both pools and caches
                await drive(200, 8, patchwire)
                await drive(200, 8, patchwire_session)
                for c in (1, 64):
                    # Alternate short chunks so drift on a shared machine hits all alike.
                    chunk = max(calls // rounds, c)
                    spent_raw = spent_pw = spent_session = 0.0
                    for _ in range(rounds):
                        spent_raw += chunk / await drive(chunk, c, raw)
                        spent_pw += chunk / await drive(chunk, c, patchwire)
                        spent_session += chunk / await drive(chunk, c, patchwire_session)
                    best_raw = chunk * rounds / spent_raw
                    best_pw = chunk * rounds / spent_pw
                    best_session = chunk * rounds / spent_session
                    figures[f"patchwire_c{c}"] = round(best_pw, 1)
                    figures[f"raw_c{c}"] = round(best_raw, 1)
                    figures[f"ratio_c{c}"] = round(best_pw / best_raw, 3)
                    figures[f"patchwire_session_c{c}"] = round(best_session, 1)
                    figures[f"ratio_session_c{c}"] = round(best_session / best_raw, 3)
                    print(f"concurrency {c:>2}: patchwire {best_pw:8.1f} calls/s   "
                          f"raw aiohttp {best_raw:8.1f} req/s   ratio {best_pw / best_raw:.3f}"
                          f"   (through the aiohttp session: {best_session:8.1f} calls/s, "
                          f"ratio {best_session / best_raw:.3f})", flush=True)
                await pw.flush()
                recorded = await pw.store.count_calls(connection="bench")
                print(f"call records written: {recorded}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (< 30 s)")
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args()
    calls = args.calls or (2_000 if args.quick else 20_000)
    rounds = 10
    result = asyncio.run(main(calls, rounds))
    print(json.dumps(result))
