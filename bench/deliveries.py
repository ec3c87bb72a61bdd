"""Outbound webhook deliveries per second to a local sink in another process.

The sink (this file with ``--sink``) is an aiohttp server on loopback that answers 204 to
every POST and counts them; running it in its own process keeps its CPU out of this one's.
The measured part is the whole delivery path of ``DeliveryWorker.run_once``: dispatching
the events (one delivery per subscription, in transactions of 1,000 events), then sending
each endpoint's deliveries in order — signed with Standard Webhooks headers, through the
SSRF-guarded session, one request in flight per endpoint — with every attempt's result
group-committed to the store (delivery row updated, attempt logged).

Two shapes, each on a fresh SQLite store (and PostgreSQL when ``PATCHWIRE_BENCH_POSTGRES_URL``
is set; its webhook tables are emptied first):

- ``fanout``: ``ENDPOINTS`` subscriptions (each on its own sink path) to every event; the
  events are written up front (not measured). This is the figure the goal is about.
- ``single``: one endpoint. Deliveries to an endpoint are strictly ordered, one in flight,
  so this rate is bounded by the round trip, not by the worker.

The sink's own count is checked against the store's (every delivery succeeded, none twice),
and one request is verified with the ``standardwebhooks`` package when it is installed.
For scale, a plain aiohttp loop (same bodies, same one-in-flight-per-endpoint concurrency,
no store) is measured too, and each shape reports its CPU per delivery: on a shared or
small machine ``cpu_bound_deliveries_per_s`` (what one core running the worker sustains)
is the steadier figure.
The last line of output is one JSON object of the figures.

    python bench/deliveries.py            # 32 endpoints x 1,250 events = 40,000 deliveries
    python bench/deliveries.py --quick    # 16 x 250, same output shape
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, text

from _common import start_listening
from patchwire.auth.vault import Vault
from patchwire.ids import new_id
from patchwire.store import Store
from patchwire.store._delivery_models import (
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookSubscriptionRow,
)
from patchwire.store.models import EventRow
from patchwire.webhooks import DeliveryWorker, WebhookOutbox

POSTGRES_ENV = "PATCHWIRE_BENCH_POSTGRES_URL"
ENDPOINTS = 32
GOAL_PER_S = 2_000

_EVENTS = cast(Table, EventRow.__table__)
_ATTEMPTS = cast(Table, WebhookAttemptRow.__table__)
_DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)
_SUBS = cast(Table, WebhookSubscriptionRow.__table__)


# -- the sink (another process) ----------------------------------------------------------------


def run_sink() -> None:
    from aiohttp import web

    received = {"count": 0}
    sample: dict[str, Any] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        received["count"] += 1
        # the latest request, for the measurement that just ran to verify
        sample.update(headers={k.lower(): v for k, v in request.headers.items()},
                      body=body.decode())
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({**received, "sample": sample})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/stats", stats)
        app.router.add_post("/{tail:.*}", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        print(f"sink listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_sink() -> tuple[subprocess.Popen[str], str]:
    return start_listening([sys.executable, __file__, "--sink"], "sink")


async def sink_stats(url: str) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"{url}/stats") as resp:
        return cast(dict[str, Any], await resp.json())


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process used so far; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- one measurement ---------------------------------------------------------------------------


async def reset(store: Store) -> None:
    async with store.engine.begin() as conn:
        for table in (_ATTEMPTS, _DELIVERIES, _SUBS):
            await conn.execute(delete(table))
        await conn.execute(text("UPDATE events SET dispatched_at = 0 "
                                "WHERE dispatched_at IS NULL"))


async def measure(store: Store, vault: Vault, sink: str, sink_pid: int, endpoints: int,
                  events: int) -> dict[str, Any]:
    await reset(store)
    outbox = WebhookOutbox(store, vault, allow_networks=("127.0.0.1",))
    secrets = [(await outbox.create_subscription(f"{sink}/e/{i}", ["*"])).secret
               for i in range(endpoints)]
    now = time.time()
    rows = [{"id": new_id(), "type": "order.updated",
             "data": {"order": n, "status": "paid", "total": 12.5 + n, "currency": "EUR"},
             "run_id": None, "source": "sync", "created_at": now + n * 1e-6,
             "dispatched_at": None} for n in range(events)]
    async with store.engine.begin() as conn:
        for i in range(0, len(rows), 2000):
            await conn.execute(insert(_EVENTS), rows[i:i + 2000])
    before = (await sink_stats(sink))["count"]
    worker = DeliveryWorker(outbox, max_endpoints=max(endpoints, 1))
    cpu0, sink_cpu0 = time.process_time(), process_cpu(sink_pid)
    started = time.perf_counter()
    try:
        sent = await worker.run_once()
    finally:
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        sink_cpu1 = process_cpu(sink_pid)
        await worker.stop()
    stats = await sink_stats(sink)
    expected = endpoints * events
    succeeded = await outbox.count_deliveries(status="succeeded")
    total = await outbox.count_deliveries()
    async with store.engine.connect() as conn:
        latencies = sorted(r[0] for r in (await conn.execute(
            select(_ATTEMPTS.c.latency_ms))).all())
    if not (sent == succeeded == total == expected == stats["count"] - before):
        raise SystemExit(f"lost or duplicated deliveries: expected {expected}, sent {sent}, "
                         f"succeeded {succeeded}, rows {total}, sink saw "
                         f"{stats['count'] - before}")
    verified = verify_sample(stats.get("sample") or {}, secrets)
    return {
        "deliveries": expected,
        "endpoints": endpoints,
        "deliveries_per_s": round(expected / elapsed, 1),
        "seconds": round(elapsed, 3),
        "cpu_ms_per_delivery": round(cpu * 1000 / expected, 4),
        # what one core running the worker sustains, however busy the machine is
        "cpu_bound_deliveries_per_s": round(expected / cpu, 1) if cpu else None,
        "sink_busy": (None if sink_cpu0 is None or sink_cpu1 is None
                      else round((sink_cpu1 - sink_cpu0) / elapsed, 3)),
        "attempt_p50_ms": round(statistics.median(latencies), 3),
        "attempt_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 3),
        "signature_verified": verified,
    }


async def raw_loop(sink: str, endpoints: int, per_endpoint: int) -> dict[str, Any]:
    """The yardstick: a plain aiohttp loop posting the same bodies, one request in flight
    per endpoint, no store, no signing, no guard."""
    import aiohttp

    body = json.dumps({"type": "order.updated", "timestamp": "2025-01-01T00:00:00.000Z",
                       "data": {"order": 1, "status": "paid", "total": 13.5,
                                "currency": "EUR"}}).encode()
    headers = {"content-type": "application/json"}

    async def client(http: aiohttp.ClientSession, i: int) -> None:
        for _ in range(per_endpoint):
            async with http.post(f"{sink}/raw/{i}", data=body, headers=headers) as resp:
                await resp.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=endpoints)) as http:
        await asyncio.gather(*(client(http, i) for i in range(endpoints)))  # warm
        cpu0 = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(client(http, i) for i in range(endpoints)))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
    n = endpoints * per_endpoint
    return {"raw_aiohttp_per_s": round(n / elapsed, 1),
            "raw_cpu_ms_per_request": round(cpu * 1000 / n, 4)}


def verify_sample(sample: dict[str, Any], secrets: list[str]) -> bool | None:
    """The first request the sink saw, verified by the receivers' own library."""
    try:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError
    except ImportError:
        return None
    if not sample:
        return False
    for secret in secrets:
        try:
            Webhook(secret).verify(sample["body"], sample["headers"])
            return True
        except WebhookVerificationError:
            continue
    return False


async def run_store(label: str, url: str, vault: Vault, sink: str, sink_pid: int,
                    endpoints: int, events: int) -> dict[str, Any]:
    async with await Store.open(url) as store:
        # warm-up: connection pools, DNS cache, code paths
        await measure(store, vault, sink, sink_pid, min(endpoints, 4), 50)
        fanout = await measure(store, vault, sink, sink_pid, endpoints, events)
        print(f"{label} fanout: {json.dumps(fanout)}", flush=True)
        single = await measure(store, vault, sink, sink_pid, 1, min(events * 2, 2000))
        print(f"{label} single endpoint: {json.dumps(single)}", flush=True)
        if store.dialect == "postgresql":
            await reset(store)
    return {"fanout": fanout, "single": single}


async def main(endpoints: int, events: int) -> dict[str, Any]:
    proc, sink = start_sink()
    result: dict[str, Any] = {"deliveries_per_s": None, "postgres_deliveries_per_s": None}
    try:
        vault = Vault({"bench": os.urandom(32)}, "bench")
        with tempfile.TemporaryDirectory() as home:
            sqlite = await run_store("sqlite", f"sqlite+aiosqlite:///{home}/bench.db", vault,
                                     sink, proc.pid, endpoints, events)
        result["deliveries_per_s"] = sqlite["fanout"]["deliveries_per_s"]
        result.update({f"sqlite_{k}": v for k, v in sqlite["fanout"].items()
                       if k != "deliveries_per_s"})
        result["single_endpoint_deliveries_per_s"] = sqlite["single"]["deliveries_per_s"]
        raw = await raw_loop(sink, endpoints, max(events // 4, 50))
        print(f"raw aiohttp loop: {json.dumps(raw)}", flush=True)
        result.update(raw)
        pg_url = os.environ.get(POSTGRES_ENV)
        if pg_url:
            postgres = await run_store("postgres", pg_url, vault, sink, proc.pid, endpoints,
                                       events)
            result["postgres_deliveries_per_s"] = postgres["fanout"]["deliveries_per_s"]
            result["postgres_single_endpoint_deliveries_per_s"] = (
                postgres["single"]["deliveries_per_s"])
        else:
            print(f"postgres: skipped ({POSTGRES_ENV} not set)", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    result["goal_per_s"] = GOAL_PER_S
    result["cpus"] = os.cpu_count()
    result["load_avg_1m"] = os.getloadavg()[0]  # other work on the machine skews the rates
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 endpoints x 250 events")
    parser.add_argument("--endpoints", type=int, default=None)
    parser.add_argument("--events", type=int, default=None, help="events per endpoint")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink()
        sys.exit(0)
    n_endpoints = args.endpoints or (16 if args.quick else ENDPOINTS)
    n_events = args.events or (250 if args.quick else 1_250)
    print(json.dumps(asyncio.run(main(n_endpoints, n_events))))
