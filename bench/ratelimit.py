"""Rate limit shared by two processes: achieved rate vs the declared one, worst window.

A tiny upstream in this process timestamps every request it receives; two worker
processes (sharing one store) each call one connector declaring ``LIMIT/second per
connector`` as fast as they can for the duration. Reported: requests per second achieved
over the steady part of the run divided by the declared rate, and the most requests
seen in any one-second sliding window divided by the limit. The last line of output is
one JSON object of the figures.

    python bench/ratelimit.py            # 20 s
    python bench/ratelimit.py --quick    # under 30 s, same output shape
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

LIMIT = 50
WORKERS = 2

CONNECTOR = """
name: limited
base_url: "{url}"
settings:
  url: {}
rate_limits: ["LIMIT/second per connector"]
retry: {attempts: 1}
actions:
  ping:
    request: {path: /ping}
""".replace("LIMIT", str(LIMIT))


async def child(url: str, home: str, seconds: float, concurrency: int) -> None:
    from patchwire import Patchwire, Settings
    from patchwire.connectors import ConnectorRegistry, load_connector_text
    from patchwire.errors import ConnectionExists

    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "limited.yaml")])
    settings = Settings(home=Path(home), connector_paths=())
    async with Patchwire(settings, connectors=registry) as pw:
        with contextlib.suppress(ConnectionExists):
            await pw.add_connection("limited", "shared", {"url": url})
        print("ready", flush=True)
        sys.stdin.readline()  # the parent starts both workers at once
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                await pw.call("limited.ping", connection="shared")

        # callers queued on the limiter when the deadline passes would still go out
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))),
                               seconds + 30)


async def parent(seconds: float) -> dict[str, float]:
    arrivals: list[float] = []

    async def ping(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ping", ping)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        procs = []
        for _ in range(WORKERS):
            p = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--child", url, home, str(seconds),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert p.stdout is not None
            line = await p.stdout.readline()
            if line.strip() != b"ready":
                raise SystemExit(f"worker did not start: {line!r}")
            procs.append(p)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        for p in procs:
            await p.wait()
    await runner.cleanup()

    arrivals.sort()
    start, end = arrivals[0], arrivals[-1]
    # the steady part: skip the first second, where each limiter starts with a full window
    steady = [t for t in arrivals if start + 1.0 <= t <= end]
    achieved = len(steady) / max(1e-9, steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    worst = max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals))
    figures = {
        "declared_per_second": LIMIT,
        "processes": WORKERS,
        "requests": len(arrivals),
        "achieved_per_second": round(achieved, 2),
        "achieved_over_declared": round(achieved / LIMIT, 3),
        "worst_window": worst,
        "worst_window_over_declared": round(worst / LIMIT, 3),
    }
    print(f"{WORKERS} processes, declared {LIMIT}/s: achieved {achieved:.1f}/s "
          f"({achieved / LIMIT:.3f}x), worst 1 s window {worst} ({worst / LIMIT:.3f}x)",
          flush=True)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (< 30 s)")
    parser.add_argument("--child", nargs=3, metavar=("URL", "HOME", "SECONDS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, home, secs = args.child
        asyncio.run(child(url, home, float(secs), concurrency=16))
    else:
        print(json.dumps(asyncio.run(parent(8.0 if args.quick else 20.0))))
