"""Webhook ingest: acknowledged events/s and acknowledgement latency of ``/hooks/{source}``.

The server is a ``patchwire serve``-like app (``create_app(pw, engine=True)``: the flow
engine and the inbox processor run too) under uvicorn in a subprocess; the load generator
is another subprocess. Every event is a distinct JSON body signed with Standard Webhooks
(``sign``; signed before the clock starts), so each request is verified, parsed, committed
to the inbox (group commit) and only then acknowledged. An event counts when its 202
arrived; latency is from writing the request to reading the whole response.

The generator is a minimal HTTP/1.1 client on asyncio streams (keep-alive connections, each
sending its next request once the previous answer arrived): aiohttp's client costs about
five times more CPU a request, and on a 2-core machine the generator would be measured
instead of the server. ``CONNECTIONS`` connections are in flight at once.

Runs on SQLite (a fresh file) and on PostgreSQL when ``PATCHWIRE_BENCH_POSTGRES_URL`` is
set (null figures otherwise; the source and its events are deleted afterwards). The server
process's CPU per event and the inbox's commits are reported too, and which HTTP parser
and event loop uvicorn used (``httptools``/``uvloop`` when installed, else ``h11``/asyncio:
the pure-Python parser alone caps a process at a few thousand requests a second).

Server memory: the server process's resident set (``VmRSS`` of ``/proc/<pid>/status``)
idle once it answers ``/healthz`` and has settled for a second, its peak under load
(sampled every 100 ms by a side thread through the warm-up and the measured run), and
right after the load; ``VmHWM``, the kernel's own high-water mark over the process's life,
is reported too as a check on the sampling. Figures in MiB (``*_rss_mb``), null off Linux.
The last line of output is one JSON object of the figures.

    python bench/webhook_ingest.py            # 20,000 events per store
    python bench/webhook_ingest.py --quick    # 3,000 events, same output shape
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

POSTGRES_ENV = "PATCHWIRE_BENCH_POSTGRES_URL"
#: bounds on the server starting and on one generator run
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 300.0
#: requests in flight at once (one per keep-alive connection)
CONNECTIONS = 32
WARMUP = 500
#: the server's memory: sampled this often under load, read this long after it is healthy
RSS_SAMPLE_S = 0.1
IDLE_SETTLE_S = 1.0
ROOT = Path(__file__).resolve().parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- the server process ----------------------------------------------------------------------


def serve(home: str, database_url: str, port_file: str) -> None:
    """``--serve``: the app under uvicorn on a free loopback port; writes the port."""
    import socket

    import uvicorn

    from patchwire import Patchwire
    from patchwire.config import Settings
    from patchwire.server import create_app

    settings = Settings(home=Path(home), connector_paths=(), database_url=database_url)
    app = create_app(Patchwire(settings), engine=True)
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose protocol says
    # TCP, and a plain socket.socket() says 0 — then every response waits out the client's
    # delayed ACK (40 ms) behind Nagle
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    loop_name = "uvloop" if config.loop in ("auto", "uvloop") and _has("uvloop") else "asyncio"
    http_name = "httptools" if config.http in ("auto", "httptools") and _has(
        "httptools") else "h11"
    Path(port_file).write_text(json.dumps({"port": sock.getsockname()[1], "http": http_name,
                                           "loop": loop_name}))
    server.run(sockets=[sock])


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def start_server(home: str, database_url: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    port_file = Path(home) / "port.json"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--home", home,
                             "--database-url", database_url, "--port-file", str(port_file)])
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the server did not start within {START_TIMEOUT_S:g} s")
        time.sleep(0.05)
    info: dict[str, Any] = json.loads(port_file.read_text())
    # up once /healthz answers (the lifespan has run: store open, migrations applied)
    import urllib.request

    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{info['port']}/healthz",
                                        timeout=1) as r:
                if r.status == 200:
                    return proc, info
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("the server did not become healthy") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def process_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_memory_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A memory figure of ``/proc/<pid>/status`` (``VmRSS``: resident now; ``VmHWM``: the
    resident peak so far) in MiB; None when unreadable (not Linux, process gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    return None


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds on a side thread (the load
    generator runs as a blocking subprocess meanwhile) and keeps the peak."""

    def __init__(self, pid: int, interval: float = RSS_SAMPLE_S) -> None:
        self.pid = pid
        self.interval = interval
        self.peak: float | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval):
                return

    def _sample(self) -> None:
        rss = process_memory_mb(self.pid)
        if rss is not None:
            self.samples += 1
            self.peak = rss if self.peak is None else max(self.peak, rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10 * self.interval + 5)
        self._sample()  # the moment the load ended counts too


def _mb(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# -- the load generator process ----------------------------------------------------------------


def requests_for(source: str, secret: str, n: int, start: int) -> list[bytes]:
    """``n`` complete signed HTTP/1.1 requests (distinct event ids and bodies)."""
    from patchwire.webhooks import SchemeSettings, sign

    scheme = SchemeSettings(scheme="standard")
    now = time.time()
    out = []
    for i in range(start, start + n):
        body = json.dumps({"type": "order.created", "data": {
            "id": i, "total": 1999 + i % 100, "currency": "usd",
            "customer": {"id": f"cus_{i % 977}", "email": f"c{i % 977}@example.com"}}},
            separators=(",", ":")).encode()
        headers = sign(scheme, secret, body, timestamp=now, event_id=f"evt_{i}")
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append((f"POST /hooks/{source} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                    f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                    f"{head}\r\n").encode() + body)
    return out


async def generate(port: int, payloads: list[bytes], connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    todo = iter(payloads)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in todo:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    wall = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    wall = time.perf_counter() - wall
    acked = statuses.get(202, 0)
    return {"wall_s": wall, "acked": acked, "statuses": statuses,
            "events_per_s": acked / wall if wall else 0.0,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "max_ms": max(latencies) * 1000}


def load(port: int, source: str, secret: str, n: int, start: int, connections: int) -> None:
    """``--load``: sign ``n`` events, post them, print the figures as JSON."""
    payloads = requests_for(source, secret, n, start)
    print(json.dumps(asyncio.run(generate(port, payloads, connections))), flush=True)


def run_load(port: int, source: str, secret: str, n: int, start: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--load", "--port", str(port),
                           "--source", source, "--events", str(n), "--start", str(start),
                           "--connections", str(CONNECTIONS)],
                          input=secret, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if proc.returncode != 0:
        raise SystemExit(f"the load generator failed:\n{proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- one store -----------------------------------------------------------------------------------


async def add_source(home: str, database_url: str, source: str, secret: str) -> None:
    from patchwire import Patchwire
    from patchwire.config import Settings
    from patchwire.webhooks import SchemeSettings
    from patchwire.webhooks._sources import WebhookSources

    settings = Settings(home=Path(home), connector_paths=(), database_url=database_url)
    async with Patchwire(settings) as pw:
        await WebhookSources(pw).add(source, SchemeSettings(scheme="standard"), [secret])


async def inbox_facts(home: str, database_url: str, source: str, *,
                      forget: bool) -> dict[str, int]:
    """Rows and distinct event ids of this run's source (and deletes them if asked)."""
    from sqlalchemy import Table, delete, func, select

    from patchwire import Patchwire
    from patchwire.config import Settings
    from patchwire.store._webhook_models import WebhookInboxRow, WebhookSourceRow

    inbox = WebhookInboxRow.__table__
    sources = WebhookSourceRow.__table__
    assert isinstance(inbox, Table) and isinstance(sources, Table)
    settings = Settings(home=Path(home), connector_paths=(), database_url=database_url)
    async with Patchwire(settings) as pw, pw.store.engine.begin() as conn:
        rows, distinct = (await conn.execute(select(
            func.count(), func.count(inbox.c.event_id.distinct())).where(
            inbox.c.source == source))).one()
        if forget:
            await conn.execute(delete(inbox).where(inbox.c.source == source))
            await conn.execute(delete(sources).where(sources.c.name == source))
    return {"rows": int(rows), "distinct_event_ids": int(distinct)}


def measure(label: str, home: str, database_url: str, events: int) -> dict[str, Any]:
    source = f"bench_{secrets.token_hex(4)}"
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    asyncio.run(add_source(home, database_url, source, secret))
    proc, info = start_server(home, database_url)
    try:
        time.sleep(IDLE_SETTLE_S)  # let start-up work (engine, inbox processor) settle
        idle_rss = process_memory_mb(proc.pid)
        with RssSampler(proc.pid) as sampler:
            run_load(info["port"], source, secret, WARMUP, 0)  # warm the pools and caches
            cpu_before = process_cpu(proc.pid)
            result = run_load(info["port"], source, secret, events, WARMUP)
            cpu_after = process_cpu(proc.pid)
        after_rss = process_memory_mb(proc.pid)
        hwm_rss = process_memory_mb(proc.pid, "VmHWM")
    finally:
        stop(proc)
    facts = asyncio.run(inbox_facts(home, database_url, source,
                                    forget=label == "postgres"))
    if facts["rows"] != WARMUP + result["acked"] or facts["distinct_event_ids"] != facts["rows"]:
        raise SystemExit(f"{label}: {result['acked']} events acknowledged but the inbox "
                         f"holds {facts}")
    cpu_ms = (None if cpu_before is None or cpu_after is None
              else (cpu_after - cpu_before) / events * 1000)
    figures = {
        "events_per_s": round(result["events_per_s"], 1),
        "p50_ms": round(result["p50_ms"], 2),
        "p99_ms": round(result["p99_ms"], 2),
        "max_ms": round(result["max_ms"], 2),
        "server_cpu_ms_per_event": None if cpu_ms is None else round(cpu_ms, 3),
        "non_2xx": sum(n for s, n in result["statuses"].items() if not 200 <= int(s) < 300),
        "events": events,
        "http": info["http"],
        "loop": info["loop"],
        "idle_rss_mb": _mb(idle_rss),
        "peak_rss_mb": _mb(sampler.peak),
        "after_rss_mb": _mb(after_rss),
        "hwm_rss_mb": _mb(hwm_rss),
        "rss_samples": sampler.samples,
    }
    print(f"{label:>8}: {figures['events_per_s']:8.1f} events/s acknowledged, "
          f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms; "
          f"server CPU {figures['server_cpu_ms_per_event']} ms/event "
          f"({info['http']}, {info['loop']}); every acknowledged event is in the inbox once",
          flush=True)
    print(f"{label:>8}: server RSS {figures['idle_rss_mb']} MiB idle, "
          f"{figures['peak_rss_mb']} MiB peak under load ({sampler.samples} samples every "
          f"{RSS_SAMPLE_S * 1000:g} ms), {figures['after_rss_mb']} MiB after; "
          f"high-water mark {figures['hwm_rss_mb']} MiB", flush=True)
    return figures


def main(events: int) -> dict[str, Any]:
    result: dict[str, Any] = {"sqlite_events_per_s": None, "sqlite_p99_ms": None,
                              "postgres_events_per_s": None, "postgres_p99_ms": None}
    with tempfile.TemporaryDirectory() as home:
        sqlite = measure("sqlite", home, f"sqlite+aiosqlite:///{home}/patchwire.db", events)
        result.update({f"sqlite_{k}": v for k, v in sqlite.items()})
    pg_url = os.environ.get(POSTGRES_ENV)
    if pg_url:
        with tempfile.TemporaryDirectory() as home:
            postgres = measure("postgres", home, pg_url, events)
        result.update({f"postgres_{k}": v for k, v in postgres.items()})
    else:
        print(f"postgres: skipped ({POSTGRES_ENV} not set)", flush=True)
    result["connections"] = CONNECTIONS
    # the contract: these four are the last line's leading keys
    head = ("sqlite_events_per_s", "sqlite_p99_ms", "postgres_events_per_s", "postgres_p99_ms")
    return {**{k: result[k] for k in head}, **{k: v for k, v in result.items() if k not in head}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (3,000 events)")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.home, args.database_url, args.port_file)
    elif args.load:
        load(args.port, args.source, sys.stdin.read().strip(), args.events, args.start,
             args.connections)
    else:
        n = args.events or (3_000 if args.quick else 20_000)
        print(json.dumps(main(n)))
