"""Dashboard page render time with 100,000 runs stored (goal: p95 <= 150 ms).

The store (SQLite, a fresh file) is filled in bulk with plain driver statements, not by
running flows: ``RUNS`` runs of the shipped example flows spread over 30 days (85%
succeeded, 10% failed, 3% waiting, 2% running), four step checkpoints each, and the flow
versions they reference. Then the app (``create_app``, its engine not started, so nothing
claims the seeded runs) is served by uvicorn on loopback and pages are fetched over HTTP
one at a time, each timed from request to last byte:

- runs list: the first page, the failed runs, one flow's runs, a page deep in history
  (a ``before`` cursor 90% of the way down) and a 7-day window, in turn;
- run detail: random runs (the timeline of their steps, their flow's definition).

Each kind is warmed first. The last line of output is one JSON object of the figures.

    python bench/dashboard.py            # 100,000 runs, 300 requests per page kind
    python bench/dashboard.py --quick    # 100,000 runs, 60 requests per page kind
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvicorn

from patchwire import Patchwire
from patchwire.config import Settings
from patchwire.flows import FlowRegistry, digest_of
from patchwire.server import create_app
from patchwire.store.reports import percentile

RUNS = 100_000
STEPS_PER_RUN = 4
GOAL_MS = 150.0
SPREAD_S = 30 * 86400.0


def seed(database: Path, registry: FlowRegistry, runs: int, rng: random.Random) -> list[str]:
    """Insert ``runs`` runs with their steps; their ids."""
    flows = list(registry)
    now = time.time()
    db = sqlite3.connect(database)
    db.execute("PRAGMA synchronous=OFF")
    db.executemany(
        "INSERT INTO flow_versions (flow_id, digest, version, definition, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(f.id, digest_of(f), f.version,
          orjson.dumps(f.model_dump(mode="json", by_alias=True)).decode(), now - SPREAD_S)
         for f in flows])
    ids: list[str] = []
    run_rows: list[tuple[Any, ...]] = []
    step_rows: list[tuple[Any, ...]] = []
    for i in range(runs):
        flow = flows[i % len(flows)]
        created = now - SPREAD_S * (1 - i / runs) + rng.random()
        run_id = f"{int(created * 1000):013x}{i:08x}{rng.getrandbits(44):011x}"
        roll = rng.random()
        status = ("succeeded" if roll < 0.85 else "failed" if roll < 0.95
                  else "waiting" if roll < 0.98 else "running")
        keys = [s.id for s in flow.steps][:STEPS_PER_RUN]
        error = ({"code": "not_found", "message": "the upstream answered 404",
                  "step": keys[-1]} if status == "failed" else None)
        finished = created + 0.4 if status in ("succeeded", "failed") else None
        run_rows.append((
            run_id, flow.id, flow.version, digest_of(flow), status, "api",
            orjson.dumps({"order_id": str(i), "reason": "bench"}).decode(),
            orjson.dumps({"order_id": str(i), "tickets": [i]}).decode()
            if status == "succeeded" else None,
            orjson.dumps(error).decode() if error else None, None, None, None, None, None,
            created + 3600 if status == "waiting" else None, 1, created,
            finished or created, finished))
        for n, key in enumerate(keys):
            failed_here = status == "failed" and n == len(keys) - 1
            step_rows.append((
                run_id, key, "call", "failed" if failed_here else "succeeded",
                None if failed_here else orjson.dumps({"id": str(i), "n": n}).decode(),
                orjson.dumps(error).decode() if failed_here else None,
                3 if failed_here else 1, created + n * 0.1, created + n * 0.1 + 0.08))
        ids.append(run_id)
    db.executemany(
        "INSERT INTO flow_runs (id, flow_id, flow_version, flow_digest, status, trigger, "
        "input, output, error, parent_run_id, parent_step, idempotency_key, owner, "
        "lease_until, wake_at, attempt, created_at, updated_at, finished_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
    db.executemany(
        "INSERT INTO flow_steps (run_id, key, kind, status, output, error, attempts, "
        "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", step_rows)
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return ids


async def timed(http: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with http.get(url) as resp:
        await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}")
    return (time.perf_counter() - started) * 1000


def p95(samples: list[float]) -> float:
    return percentile(sorted(samples), 95) or 0.0


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` on a free loopback port (its lifespan run) for the block; its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn exited before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def main(runs: int, requests: int) -> dict[str, Any]:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="pw-dash-bench-") as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home, connector_paths=(), flow_paths=())
        async with Patchwire(settings) as pw:  # creates and migrates the store
            database = Path(pw.store.engine.url.database or "")
        registry = FlowRegistry.load((), builtins=True)
        started = time.perf_counter()
        ids = seed(database, registry, runs, rng)
        seeded_s = time.perf_counter() - started
        print(f"seeded {runs:,} runs and {runs * STEPS_PER_RUN:,} steps in {seeded_s:.1f} s",
              flush=True)
        flows = [f.id for f in registry]
        deep = ids[int(len(ids) * 0.1)]  # newest first: 90% of the way down
        week = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 7 * 86400))
        lists = ["/runs", "/runs?status=failed", f"/runs?flow={flows[0]}",
                 f"/runs?before={deep}", f"/runs?since={week}"]
        async with (serving(create_app(Patchwire(settings), engine=False)) as url,
                    aiohttp.ClientSession() as http):
            for path in lists * 4 + [f"/runs/{rng.choice(ids)}" for _ in range(20)]:
                await timed(http, url + path)  # warm: connections, templates, caches
            by_kind: dict[str, list[float]] = {p: [] for p in lists}
            for i in range(requests):
                path = lists[i % len(lists)]
                by_kind[path].append(await timed(http, url + path))
            detail = [await timed(http, url + f"/runs/{rng.choice(ids)}")
                      for _ in range(requests)]
    list_all = [ms for samples in by_kind.values() for ms in samples]
    for path, samples in by_kind.items():
        print(f"runs list {path:<48} p50 {statistics.median(samples):6.1f} ms   "
              f"p95 {p95(samples):6.1f} ms")
    print(f"run detail {'(random runs)':<47} p50 {statistics.median(detail):6.1f} ms   "
          f"p95 {p95(detail):6.1f} ms")
    figures = {"runs_list_p95_ms": round(p95(list_all), 1),
               "run_detail_p95_ms": round(p95(detail), 1)}
    ok = all(v <= GOAL_MS for v in figures.values())
    print(f"goal p95 <= {GOAL_MS:.0f} ms: {'met' if ok else 'NOT met'} "
          f"({runs:,} runs, {requests} requests per page kind)")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (60 per kind)")
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.runs, 60 if args.quick else 300))))
