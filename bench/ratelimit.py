"""Rate limit shared by two processes: achieved rate vs the declared one, worst window.

A tiny upstream in this process timestamps every request it receives; two worker
processes (sharing one store) each call one connector declaring ``LIMIT/second per
connector`` as fast as they can for the duration. Reported: requests per second achieved
over the steady part of the run divided by the declared rate, and the most requests
seen in any one-second sliding window divided by the limit. The last line of output is
one JSON object of the figures.

Why "achieved" is the mean count of a sliding one-second window rather than requests over
elapsed time: at saturation a sliding-log limiter grants in bursts (a whole window's slots
free a period after the previous burst), and a plain count over a span whose ends fall
between bursts over- or under-states the rate by up to one burst. The mean window count
over the steady part is unbiased. The workers also log when each leased token was taken
(the instant the limiter accounts for); the worst window of those shows what the limiter
itself granted, apart from the jitter between granting a request and its arrival here.

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


def _record_grants(log: list[float]) -> None:
    """Log the wall time of every leased token taken in this process."""
    from patchwire.http._shared_limits import SharedQuota

    take = SharedQuota.take

    def logged(self: SharedQuota) -> bool:
        ok = take(self)
        if ok:
            log.append(time.time())
        return ok

    SharedQuota.take = logged  # type: ignore[method-assign]


async def child(url: str, home: str, seconds: float, concurrency: int) -> None:
    from patchwire import Patchwire, Settings
    from patchwire.connectors import ConnectorRegistry, load_connector_text
    from patchwire.errors import ConnectionExists

    grants: list[float] = []
    _record_grants(grants)

    registry = ConnectorRegistry([load_connector_text(CONNECTOR, "limited.yaml")])
    # the sandbox is on loopback, which the SSRF guard refuses unless allow-listed
    settings = Settings(home=Path(home), connector_paths=(), allow_networks=("127.0.0.1",))
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
    print(json.dumps(grants), flush=True)


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
        grants: list[float] = []
        for p in procs:
            assert p.stdout is not None
            out = await p.stdout.read()
            await p.wait()
            grants.extend(json.loads(out.decode().strip().splitlines()[-1] or "[]"))
    await runner.cleanup()

    arrivals.sort()
    grants.sort()
    start, end = arrivals[0], arrivals[-1]
    # the steady part: skip the first second, where the limit starts with a full window,
    # and the last, where the workers stop calling
    achieved = _mean_window(arrivals, start + 1.0, end - 2.0)
    worst = _worst_window(arrivals)
    worst_granted = _worst_window(grants)
    figures = {
        "declared_per_second": LIMIT,
        "processes": WORKERS,
        "requests": len(arrivals),
        "achieved_per_second": round(achieved, 2),
        "achieved_over_declared": round(achieved / LIMIT, 3),
        "worst_window": worst,
        "worst_window_over_declared": round(worst / LIMIT, 3),
        "worst_granted_window_over_declared": round(worst_granted / LIMIT, 3),
    }
    print(f"{WORKERS} processes, declared {LIMIT}/s: achieved {achieved:.1f}/s "
          f"({achieved / LIMIT:.3f}x), worst 1 s window {worst} ({worst / LIMIT:.3f}x) "
          f"at the upstream, {worst_granted} as granted", flush=True)
    return figures


def _worst_window(times: list[float]) -> int:
    """Most events in any half-open one-second window [t, t + 1)."""
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)),
               default=0)


def _mean_window(times: list[float], first: float, last: float) -> float:
    """Mean count of the windows [t, t + 1) for t from ``first`` to ``last`` (1 ms steps)."""
    steps = int((last - first) * 1000)
    if steps <= 0:
        return 0.0
    total = 0
    for k in range(steps):
        t = first + k / 1000
        total += bisect.bisect_left(times, t + 1.0) - bisect.bisect_left(times, t)
    return total / steps


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
