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

``--overview`` measures the overview (``/``) instead, with 10,000 end users x 3
connections (bench/end_users.py's ``populate``), three operator connections, two calls of
each connection in the last day and calls of 1,000 removed connections: the first render
and the median of a few more, each timed from request to last byte.

    python bench/dashboard.py              # 100,000 runs, 300 requests per page kind
    python bench/dashboard.py --quick      # 100,000 runs, 60 requests per page kind
    python bench/dashboard.py --overview   # the overview, 10,000 end users x 3
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
import uvicorn
from sqlalchemy import Table, insert

from end_users import CONNECTORS, populate
from patchwire import Patchwire
from patchwire.config import Settings
from patchwire.flows import FlowRegistry, digest_of
from patchwire.ids import new_id
from patchwire.sandbox import SANDBOX_CREDENTIALS
from patchwire.server import create_app
from patchwire.store.models import CallRow
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


#: the overview variant: end users (each with a connection of every CONNECTORS), calls per
#: connection in the window, connections removed since their calls, renders timed
END_USERS = 10_000
CALLS_EACH = 2
REMOVED = 1_000
RENDERS = 5


async def seed_calls(pw: Patchwire, names: list[tuple[str, str | None]],
                     rng: random.Random) -> int:
    """CALLS_EACH calls in the last day of each (connector, connection): one in ten failed."""
    table = cast(Table, CallRow.__table__)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    count = 0

    async def flush() -> None:
        async with pw.store.engine.begin() as conn:
            await conn.execute(insert(table), rows)
        rows.clear()

    for connector, connection in names:
        for _ in range(CALLS_EACH):
            failed = rng.random() < 0.1
            rows.append({
                "id": new_id(), "request_id": new_id(), "action": f"{connector}.get",
                "connector": connector, "connection": connection,
                "status": "error" if failed else "ok", "http_status": 401 if failed else 200,
                "latency_ms": rng.uniform(5, 400), "attempts": 1,
                "error_class": "auth_error" if failed else None, "error_message": None,
                "started_at": now - timedelta(seconds=rng.uniform(0, 86_000)),
                "rate_limit_wait_ms": 0.0})
            count += 1
            if len(rows) >= 5_000:
                await flush()
    if rows:
        await flush()
    return count


async def overview(end_users: int, renders: int = RENDERS) -> dict[str, Any]:
    rng = random.Random(16)
    with tempfile.TemporaryDirectory(prefix="pw-overview-bench-") as tmp:
        settings = Settings(home=Path(tmp) / "home", connector_paths=(), flow_paths=())
        started = time.perf_counter()
        async with Patchwire(settings) as pw:
            users = await populate(pw, "u", end_users)
            operators = [(connector, f"acme-{connector}") for connector in CONNECTORS]
            for connector, name in operators:
                await pw.add_connection(connector, name, {
                    **SANDBOX_CREDENTIALS[connector], "sandbox_url": "http://127.0.0.1:9"})
            calls = await seed_calls(pw, [
                *operators, *((c, f"{u}-{c}") for u in users for c in CONNECTORS),
                *((CONNECTORS[i % 3], f"gone-{i:05d}") for i in range(REMOVED))], rng)
        print(f"populated {end_users * len(CONNECTORS):,} end users' connections, "
              f"{len(operators)} operator connections and {calls:,} calls in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        async with (serving(create_app(Patchwire(settings), engine=False)) as url,
                    aiohttp.ClientSession(
                        timeout=aiohttp.ClientTimeout(total=3600)) as http):
            first = await timed(http, url + "/")
            more = [await timed(http, url + "/") for _ in range(renders)] or [first]
            async with http.get(url + "/") as resp:
                size = len(await resp.read())
    print(f"overview: first render {first:,.0f} ms, median of {renders} more "
          f"{statistics.median(more):,.0f} ms, {size:,} bytes "
          f"({end_users:,} end users x {len(CONNECTORS)} connections)")
    return {"end_users": end_users, "overview_first_ms": round(first, 1),
            "overview_median_ms": round(statistics.median(more), 1), "overview_bytes": size}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (60 per kind)")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--overview", action="store_true",
                        help="the overview with many end users' connections instead")
    parser.add_argument("--end-users", type=int, default=END_USERS)
    parser.add_argument("--renders", type=int, default=RENDERS,
                        help="renders of the overview timed after the first")
    args = parser.parse_args()
    if args.overview:
        print(json.dumps(asyncio.run(overview(args.end_users, args.renders))))
    else:
        print(json.dumps(asyncio.run(main(args.runs, 60 if args.quick else 300))))
