"""Outage: the sandbox answers 100% 503 for a while under steady offered load.

Reports how much load Patchwire put on the failing upstream (upstream requests / offered
calls, goal <= 1.1: retries within the budget, then the circuit breaker failing fast),
how soon and how fast calls fail once the breaker opens, and how long after the sandbox
heals calls succeed again. The last line of output is one JSON object of the figures.

    python bench/outage.py            # 5 s healthy, 30 s outage, recovery
    python bench/outage.py --quick    # under 30 s, same output shape
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import bench_chaos
from patchwire import Patchwire, Settings
from patchwire.errors import CallError, CircuitOpenError
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox


async def main(rate: float, healthy_s: float, outage_s: float, recovery_max_s: float
               ) -> dict[str, float | int | None]:
    async with Sandbox(chaos=bench_chaos()) as sandbox:
        with tempfile.TemporaryDirectory() as home:
            # the sandbox is on loopback, which the SSRF guard refuses unless allow-listed
            settings = Settings(home=Path(home), connector_paths=(), allow_networks=("127.0.0.1",))
            async with Patchwire(settings) as pw:
                await pw.add_connection("shop", "bench", {"sandbox_url": sandbox.url,
                                                          **SANDBOX_CREDENTIALS["shop"]})
                return await run(pw, sandbox, rate, healthy_s, outage_s, recovery_max_s)


async def run(pw: Patchwire, sandbox: Sandbox, rate: float, healthy_s: float,
              outage_s: float, recovery_max_s: float) -> dict[str, float | int | None]:
    phase = "healthy"
    offered = {"healthy": 0, "outage": 0, "recovery": 0}
    fast_fail_ms: list[float] = []
    first_open: float | None = None
    first_success_after_heal: float | None = None
    outage_started = healed_at = 0.0
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        nonlocal first_open, first_success_after_heal
        started = time.perf_counter()
        try:
            await pw.call("shop.get_order", {"order_id": "42"}, connection="bench")
        except CircuitOpenError:
            fast_fail_ms.append((time.perf_counter() - started) * 1000)
            if first_open is None and phase == "outage":
                first_open = time.monotonic()
            return
        except CallError:
            return
        if phase == "recovery" and first_success_after_heal is None:
            first_success_after_heal = time.monotonic()

    async def offer(seconds: float, until_recovered: bool = False) -> None:
        interval = 1.0 / rate
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            if until_recovered and first_success_after_heal is not None:
                break
            n += 1
            offered[phase] += 1
            t = asyncio.ensure_future(one())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            # open loop: calls start on schedule whether or not earlier ones finished
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))

    await offer(healthy_s)
    before = sandbox.stats.requests["shop"]
    sandbox.set_chaos("shop", error_rate=1.0, error_statuses=(503,), seed=7)
    phase, outage_started = "outage", time.monotonic()
    print(f"outage: sandbox answers 503 for {outage_s:g}s at {rate:g} calls/s", flush=True)
    await offer(outage_s)
    # calls still retrying when the outage ends hit the upstream during it; wait for them
    # only after healing so that they are not counted against the outage
    during = sandbox.stats.requests["shop"] - before
    sandbox.clear_chaos("shop")
    phase, healed_at = "recovery", time.monotonic()
    print("healed: measuring recovery", flush=True)
    await offer(recovery_max_s, until_recovered=True)
    if tasks:
        await asyncio.wait(tasks, timeout=30)

    amplification = during / max(1, offered["outage"])
    figures: dict[str, float | int | None] = {
        "offered_calls_outage": offered["outage"],
        "upstream_requests_outage": during,
        "amplification": round(amplification, 3),
        "breaker_open_after_s": round(first_open - outage_started, 2) if first_open else None,
        "fast_fail_median_ms": round(statistics.median(fast_fail_ms), 3) if fast_fail_ms else None,
        "fast_fail_p99_ms": round(sorted(fast_fail_ms)[int(len(fast_fail_ms) * 0.99)], 3)
        if fast_fail_ms else None,
        "fast_failed_calls": len(fast_fail_ms),
        "recovery_s": round(first_success_after_heal - healed_at, 2)
        if first_success_after_heal else None,
        "breaker_state_end": pw.breaker_state("shop").state,
    }
    print(f"offered {offered['outage']} calls during the outage, upstream saw {during} "
          f"requests: amplification {amplification:.3f}", flush=True)
    print(f"breaker opened after {figures['breaker_open_after_s']}s; fail-fast median "
          f"{figures['fast_fail_median_ms']} ms over {len(fast_fail_ms)} calls", flush=True)
    print(f"recovered {figures['recovery_s']}s after the sandbox healed", flush=True)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (< 30 s)")
    parser.add_argument("--rate", type=float, default=200.0, help="offered calls per second")
    args = parser.parse_args()
    if args.quick:
        result = asyncio.run(main(args.rate, 2.0, 10.0, 10.0))
    else:
        result = asyncio.run(main(args.rate, 5.0, 30.0, 20.0))
    print(json.dumps(result))
