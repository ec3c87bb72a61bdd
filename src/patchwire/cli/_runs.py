"""`patchwire flow run`, `patchwire runs ...` and `patchwire worker`: running durable flows.

Two ways to hold a flow engine here, each for a reason:

- inspecting and changing runs (list, show, cancel, retry, purge) and `flow run` without
  `--wait` need no engine loop: an engine that is not started reads and updates run rows,
  and records a run it starts as queued, for a running `patchwire serve` or `patchwire
  worker` to claim;
- `flow run --wait` (and `runs retry --wait`) run the run in this process with a
  *foreground* engine that claims only that run and its sub-flow runs — a one-off command
  must not take other queued runs away from the workers meant to run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from patchwire.cli._common import (
    console,
    err_console,
    errors_handled,
    escape,
    fail,
    print_json,
    run,
    settings,
)
from patchwire.errors import FlowInputError, RunStateError

if TYPE_CHECKING:
    from patchwire import Patchwire
    from patchwire.flows import Engine, FlowRegistry, FlowSpec, RunRecord, StepRecord

__all__ = ["app", "run_flow", "worker"]

app = typer.Typer(help="Flow runs: list, show, retry, cancel, purge.", no_args_is_help=True)

STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")
#: `flow run --wait` exit status when the run is still going when --timeout passes
EXIT_STILL_RUNNING = 3
_STATUS_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow",
                 "waiting": "cyan", "running": "blue", "queued": "magenta",
                 "continued": "yellow", "fallback": "yellow"}

log = logging.getLogger("patchwire.worker")


# -- engines --------------------------------------------------------------------------------


def _registry() -> FlowRegistry:
    from patchwire.flows import FlowRegistry

    reg = FlowRegistry.load(settings().flow_paths)
    for p in reg.problems:  # a broken file must not hide the flows that load
        err_console.print(f"[yellow]warning:[/] {escape(str(p))}", highlight=False)
    return reg


def _flows_of(reg: FlowRegistry) -> Mapping[str, FlowSpec]:
    # The engine gets a plain mapping: FlowEngine.purge looks for ``.values()`` to apply the
    # flows' retention, which a FlowRegistry does not have.
    return reg.as_mapping()


def foreground_engine(pw: Patchwire, flows: Mapping[str, FlowSpec],
                      mine: set[str]) -> Engine:
    """An engine that claims only the runs in ``mine`` (ids; add to it as runs start) and
    their sub-flow runs: claiming other queued runs would steal them from the workers."""
    from patchwire.flows import FlowEngine

    # poll often: this engine serves one person waiting at a terminal
    return FlowEngine(pw, flows, schedules=False, poll_interval=0.1, claim_only=mine)


@dataclass
class _Session:
    reg: FlowRegistry
    engine: Engine
    #: the runs a foreground engine may claim
    mine: set[str] = field(default_factory=set)


@asynccontextmanager
async def _session(mode: str = "store") -> AsyncIterator[_Session]:
    """``mode``: ``store`` (the engine is not started: it reads and updates rows, and runs
    it starts are queued) or ``foreground`` (started; runs ``mine`` here). With the
    Temporal engine always started, whatever the mode: it starts runs on Temporal, whose
    workers run them."""
    from patchwire import Patchwire
    from patchwire.flows import create_engine

    reg = _registry()
    async with Patchwire(settings()) as pw:
        flows = _flows_of(reg)
        mine: set[str] = set()
        engine = create_engine(pw, flows, schedules=False)
        if engine.remote:
            mode = "remote"  # Temporal's workers run the runs; this engine starts them
        elif mode == "foreground":
            engine = foreground_engine(pw, flows, mine)
        if mode == "store":
            yield _Session(reg, engine, mine)
            return
        await engine.start()
        try:
            yield _Session(reg, engine, mine)
        finally:
            # releases a run still in flight here: it resumes on any running engine
            await engine.stop()


async def follow(engine: Engine, run_id: str, max_wait: float | None) -> RunRecord:
    """Wait until the run finishes, or waits for something that is not due before the
    timeout (a timer or an approval: a worker resumes it), or the timeout passes.

    Waits for a sub-flow are followed: the sub-flow runs here and wakes its parent.
    """
    from patchwire.flows import FINISHED

    loop = asyncio.get_running_loop()
    deadline = None if max_wait is None else loop.time() + max_wait
    while True:
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            # short slices so a run that another process finishes or cancels is noticed
            record = await engine.wait(
                run_id, max_wait=1.0 if remaining is None else min(remaining, 1.0),
                until_waiting=True)
        except TimeoutError:
            record = await engine.get_run(run_id)
        if record.status in FINISHED:
            return record
        if deadline is not None and loop.time() >= deadline:
            return record
        if record.status == "waiting":
            horizon = engine.clock() + (remaining or 0.0)
            if not await _can_move(engine, run_id, horizon):
                return record
            await asyncio.sleep(engine.poll_interval)  # wait() returns at once while waiting


async def _can_move(engine: Engine, run_id: str, horizon: float) -> bool:
    """Whether the run or one of its sub-flow runs is queued, running, or waits for a time
    before ``horizon`` (epoch seconds) — else nothing happens here before the deadline."""
    return await engine.runs.may_progress(run_id, horizon)


# -- formatting -----------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max(0.0, end - start)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _error_text(error: Any) -> str:
    if not error:
        return ""
    if isinstance(error, Mapping):
        text = f"{error.get('code', 'error')}: {error.get('message', '')}".rstrip(": ")
        return f"{text} (step {error['step']})" if error.get("step") else text
    return str(error)


def _styled(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else escape(status)


def _run_json(record: RunRecord, steps: list[StepRecord] | None = None) -> dict[str, Any]:
    data = {**record.to_dict(), "dead_letter": record.dead_letter}
    if steps is not None:
        data["steps"] = [s.to_dict() for s in steps]
    return data


def _failed_step(steps: list[StepRecord]) -> StepRecord | None:
    failed = [s for s in steps if s.status == "failed"]
    return failed[-1] if failed else None


def _report(record: RunRecord, steps: list[StepRecord], as_json: bool,
            timeout: float | None) -> int:
    """Print a run's outcome; the exit status."""
    if as_json:
        print_json(_run_json(record, steps))
    elapsed = _duration(record.created_at, record.finished_at or time.time())
    name = f"run {record.id} of {record.flow_id} v{record.flow_version}"
    if record.status == "succeeded":
        if not as_json:
            print_json(record.output)
        err_console.print(f"[green]succeeded[/]: {escape(name)} ({len(steps)} step(s), "
                          f"{elapsed})", highlight=False)
        return 0
    if record.status in ("failed", "cancelled"):
        step = _failed_step(steps)
        where = f" at step {step.key}" if step is not None and record.status == "failed" else ""
        err_console.print(f"[bold red]{record.status}[/]: {escape(name)}{escape(where)}: "
                          f"{escape(_error_text(record.error))}", highlight=False)
        if record.status == "failed":
            err_console.print(f"retry it from the failed step: patchwire runs retry "
                              f"{record.id}", highlight=False)
        return 1
    later = "a running `patchwire serve` or `patchwire worker` continues it"
    if record.status == "waiting":
        until = f" until {_when(record.wake_at)}" if record.wake_at else ""
        err_console.print(f"[cyan]waiting[/]: {escape(name)} waits{until}; {later}",
                          highlight=False)
        return 0
    within = "" if timeout is None else f" within {timeout:g} s"
    err_console.print(f"[yellow]{record.status}[/]: {escape(name)} did not finish{within}; "
                      f"{later}", highlight=False)
    return EXIT_STILL_RUNNING


def _input_problems(exc: FlowInputError) -> None:
    err_console.print(f"[bold red]error:[/] {len(exc.problems)} problem(s) in the input:")
    for p in exc.problems:
        err_console.print(f"  {escape(str(p))}", highlight=False)


def _read_input(input_json: str | None, input_file: Path | None) -> Any:
    if input_json is not None and input_file is not None:
        fail("give the input either with --input or with --input-file", code=2)
    if input_file is not None:
        try:
            text = sys.stdin.read() if str(input_file) == "-" else \
                input_file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read {escape(str(input_file))}: {escape(exc.strerror or str(exc))}",
                 code=2)
        source = str(input_file)
    elif input_json is not None:
        text, source = input_json, "--input"
    else:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{escape(source)} is not valid JSON: {exc.msg} at line {exc.lineno} column "
             f"{exc.colno}", code=2)


def _parse_since(value: str) -> float:
    """An ISO 8601 time (UTC unless it says otherwise), or a duration ago (``2h``)."""
    from patchwire.flows import parse_duration

    with contextlib.suppress(ValueError):
        return time.time() - parse_duration(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since {escape(value)!r} is neither an ISO 8601 time nor a duration like 2h",
             code=2)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- flow run -------------------------------------------------------------------------------


def run_flow(
    flow_id: str = typer.Argument(..., metavar="ID", help="the flow's id"),
    input_json: str = typer.Option(None, "--input", "-i", help="the input as JSON"),
    input_file: Path = typer.Option(None, "--input-file", "-f",
                                    help="read the input JSON from a file (- for stdin)"),
    wait: bool = typer.Option(False, "--wait", "-w",
                              help="run it here and wait until it finishes or waits"),
    timeout: float = typer.Option(None, "--timeout", min=0.0,
                                  help="with --wait: stop waiting after this many seconds "
                                       "(timers due before then are waited for too)"),
    idempotency_key: str = typer.Option(None, "--idempotency-key",
                                        help="starting the same key again gives the first "
                                             "run"),
    end_user: str = typer.Option(None, "--end-user",
                                 help="run it for this end user: its calls use their "
                                      "connections only"),
    as_json: bool = typer.Option(False, "--json", help="print the run as JSON"),
) -> None:
    """Start a run of a flow. Without --wait it is queued for `patchwire serve` or
    `patchwire worker`; with --wait it runs here. Exit status with --wait: 0 succeeded (or
    waiting for a timer or approval), 1 failed or cancelled, 3 still running at --timeout."""
    value = _read_input(input_json, input_file)

    async def main() -> int:
        async with _session("foreground" if wait else "store") as session:
            engine = session.engine
            flow = session.reg.get(flow_id)  # the registry's error names the known flows
            if not flow.trigger.manual:
                raise RunStateError(f"flow {flow_id} cannot be started by hand "
                                    "(trigger.manual is false)")
            try:
                run_id = await engine.start_run(flow_id, value, trigger="manual",
                                                idempotency_key=idempotency_key,
                                                end_user=end_user)
            except FlowInputError as exc:  # every problem on its own line, with its path
                _input_problems(exc)
                return 1
            if not wait:
                record = await engine.get_run(run_id)
                if as_json:
                    print_json(_run_json(record))
                else:
                    print(run_id)
                err_console.print(
                    f"{escape(record.status)}: run {run_id} of {flow_id}; a running "
                    "`patchwire serve` or `patchwire worker` runs it (`patchwire runs show "
                    f"{run_id}` follows it)", highlight=False)
                return 0
            session.mine.add(run_id)
            record = await follow(engine, run_id, timeout)
            return _report(record, await engine.steps(run_id), as_json, timeout)

    code = run(main())
    if code:
        raise typer.Exit(code)


# -- runs -----------------------------------------------------------------------------------


@app.command("list")
def list_runs(
    flow: str = typer.Option(None, "--flow", help="only this flow's runs"),
    status: str = typer.Option(None, "--status", help="|".join(STATUSES)),
    dead: bool = typer.Option(False, "--dead", help="dead letters only (failed runs)"),
    since: str = typer.Option(None, "--since", help="ISO 8601 time, or a duration ago (2h)"),
    end_user: str = typer.Option(None, "--end-user", help="only the runs of this end user"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List runs, newest first."""
    if status is not None and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}", code=2)
    if dead and status not in (None, "failed"):
        fail("--dead lists failed runs; it cannot be combined with another --status", code=2)
    wanted = "failed" if dead else status
    after = None if since is None else _parse_since(since)

    async def main() -> None:
        async with _session() as session:
            engine = session.engine
            records = await engine.list_runs(flow_id=flow, status=wanted, since=after,
                                              limit=limit, end_user=end_user)
        if as_json:
            print_json([_run_json(r) for r in records])
            return
        # the end-user column only where some run acts for one (most deployments: none)
        users = any(r.end_user for r in records)
        table = Table("run", "flow", "status", "trigger", *(["end user"] if users else []),
                      "attempt", "started", "took", "error")
        table.columns[0].no_wrap = True
        for r in records:
            table.add_row(r.id, f"{escape(r.flow_id)} v{r.flow_version}", _styled(r.status),
                          escape(r.trigger), *([escape(r.end_user or "")] if users else []),
                          str(r.attempt), _when(r.created_at),
                          _duration(r.created_at, r.finished_at),
                          escape(_error_text(r.error)))
        console.print(table)
        if not records:
            err_console.print("no runs match")

    run(main())


@app.command("show")
def show(run_id: str = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json",
                                      help="print the run and its steps with their outputs")
         ) -> None:
    """Show a run and the timeline of its steps."""

    async def main() -> None:
        async with _session() as session:
            engine = session.engine
            record = await engine.get_run(run_id)
            steps = await engine.steps(run_id)
        if as_json:
            print_json(_run_json(record, steps))
            return
        console.print(f"[bold]run {record.id}[/] of {escape(record.flow_id)} "
                      f"v{record.flow_version}: {_styled(record.status)}"
                      + (" [red](dead letter)[/]" if record.dead_letter else ""),
                      highlight=False)
        console.print(f"trigger {escape(record.trigger)} · "
                      + (f"end user {escape(record.end_user)} · " if record.end_user else "")
                      + f"attempt {record.attempt} · started {_when(record.created_at)}"
                      + (f" · finished {_when(record.finished_at)} (took "
                         f"{_duration(record.created_at, record.finished_at)})"
                         if record.finished_at else "")
                      + (f" · wakes {_when(record.wake_at)}" if record.wake_at else ""),
                      highlight=False)
        if record.parent_run_id:
            console.print(f"sub-flow run of {record.parent_run_id}", highlight=False)
        if record.error:
            console.print(f"[red]error[/]: {escape(_error_text(record.error))}",
                          highlight=False)
        table = Table("step", "kind", "status", "attempts", "started", "took", "error")
        table.columns[0].no_wrap = True
        for s in steps:
            table.add_row(escape(s.key), s.kind, _styled(s.status), str(s.attempts),
                          _when(s.started_at), _duration(s.started_at, s.finished_at),
                          escape(_error_text(s.error)))
        console.print(table)

    run(main())


@app.command("retry")
def retry(
    run_id: str = typer.Argument(None, metavar="[ID]", help="the failed or cancelled run"),
    failed: bool = typer.Option(False, "--failed", help="every dead letter (failed run)"),
    flow: str = typer.Option(None, "--flow", help="with --failed: only this flow's"),
    wait: bool = typer.Option(False, "--wait", "-w",
                              help="with ID: run it here and wait, as `flow run --wait`"),
    timeout: float = typer.Option(None, "--timeout", min=0.0, help="with --wait"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Run failed runs again from the step that failed; finished steps are not run again.
    The runs are queued for `patchwire serve`/`patchwire worker` unless --wait."""
    if (run_id is None) == (not failed):
        fail("give a run ID or --failed (optionally with --flow)", code=2)
    if flow is not None and not failed:
        fail("--flow goes with --failed", code=2)
    if wait and failed:
        fail("--wait goes with one run ID", code=2)

    async def main() -> int:
        if failed:
            async with _session() as session:
                ids = await session.engine.retry_failed(flow_id=flow)
            if as_json:
                print_json({"retried": ids})
            else:
                for i in ids:
                    print(i)
                err_console.print(f"queued {len(ids)} failed run(s) again")
            return 0
        assert run_id is not None
        if not wait:
            async with _session() as session:
                record = await session.engine.retry(run_id)
            if as_json:
                print_json(_run_json(record))
            else:
                console.print(f"queued run {record.id} again (attempt {record.attempt}); it "
                              "resumes at the step that failed", highlight=False)
            return 0
        async with _session("foreground") as session:
            engine = session.engine
            session.mine.add(run_id)
            await engine.retry(run_id)
            record = await follow(engine, run_id, timeout)
            return _report(record, await engine.steps(run_id), as_json, timeout)

    code = run(main())
    if code:
        raise typer.Exit(code)


@app.command("cancel")
def cancel(run_id: str = typer.Argument(..., metavar="ID"),
           reason: str = typer.Option("cancelled", "--reason", help="kept as the run's error")
           ) -> None:
    """Cancel a queued, running or waiting run (a running one stops at its engine's next
    heartbeat)."""

    async def main() -> None:
        async with _session() as session:
            engine = session.engine
            record = await engine.cancel(run_id, reason=reason)
        console.print(f"cancelled run {record.id} of {escape(record.flow_id)}",
                      highlight=False)

    run(main())


@app.command("purge")
def purge(older_than: str = typer.Option(
        None, "--older-than",
        help="delete finished runs older than this (30d, 12h); default: each flow's "
             "retention")) -> None:
    """Delete finished runs and their steps."""
    from patchwire.flows import parse_duration

    age: float | None = None
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except ValueError as exc:
            fail(f"--older-than: {escape(str(exc))}", code=2)

    async def main() -> None:
        async with _session() as session:
            engine = session.engine
            count = await engine.purge(older_than=age)
        console.print(f"deleted {count} finished run(s)")

    run(main())


# -- worker ---------------------------------------------------------------------------------


def worker(concurrency: int = typer.Option(256, "--concurrency", "-c", min=1,
                                           help="runs in flight at most"),
           engine_kind: str = typer.Option(None, "--engine",
                                           help="embedded (default) or temporal "
                                                "(PATCHWIRE_ENGINE; docs/scale-out.md)"),
           ) -> None:
    """Do the background work `serve` does, without the API: run flows (queued and due
    runs, schedules), process the webhook inbox, send outbound webhooks, poll syncs —
    until Ctrl-C or SIGTERM. With the Temporal engine it is a Temporal worker: it runs
    flow workflows and their activities from the task queue."""
    from patchwire.observability import configure_logging, configure_tracing_from_env

    configure_logging()  # PATCHWIRE_LOG_FORMAT=json|text, PATCHWIRE_LOG_LEVEL
    configure_tracing_from_env()  # PATCHWIRE_TRACING=1
    from patchwire.cli._check import reload_on_signal, required_definitions

    with errors_handled():
        cfg = settings(engine=engine_kind)
    definitions = required_definitions(cfg, "worker")  # exit 2 listing every problem

    async def main() -> None:
        from patchwire.definitions import LiveDefinitions
        from patchwire.flows import create_engine
        from patchwire.runtime import Runtime, background_workers
        from patchwire.sync import SyncEngine
        from patchwire.webhooks import Inbox

        stop = asyncio.Event()
        live: list[LiveDefinitions] = []

        def reload() -> None:
            for current in live:
                reload_on_signal(current)

        runtime = Runtime(cfg, connectors=definitions.connectors)
        # Ctrl-C and SIGTERM stop the worker; SIGHUP reloads the definitions (runs in
        # flight keep their flow's version)
        with runtime.stop_on_signals(stop, on_reload=reload):
            async with runtime:
                reg = definitions.flows
                engine = create_engine(runtime, _flows_of(reg), max_concurrency=concurrency)
                syncs = SyncEngine(runtime, definitions.syncs)
                live.append(LiveDefinitions(runtime, reg, engine=engine, syncs=syncs))
                inbox = Inbox(runtime, engine)
                inbox.add_handler(syncs.handle_webhook_event)
                # with the Temporal engine, this process executes workflows and activities
                workers = background_workers(
                    runtime, engine=engine, executor_concurrency=concurrency,
                    deliveries=True, inbox=inbox, syncs=syncs)
                async with runtime.running(workers):
                    schedules = sum(len(f.trigger.schedule) for f in reg)
                    log.info("worker %s started (%s engine): %d flow(s), %d schedule(s), "
                             "concurrency %d; webhook inbox, deliveries and syncs",
                             engine.owner, cfg.engine, len(reg), schedules, concurrency)
                    try:
                        await runtime.until_stopped(stop)  # or a worker that died: why
                    finally:
                        log.info("stopping: work in flight is released and resumes from "
                                 "its last checkpoint")
        log.info("worker stopped")

    with errors_handled():
        asyncio.run(main())
