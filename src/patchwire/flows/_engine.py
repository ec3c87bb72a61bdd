"""The embedded engine: durable flow runs on the store (SQLite or PostgreSQL).

A run is a row; each finished step is a checkpoint row written (with group commit, see
``_journal.py``) before the run goes on. After a crash, a run resumes where it was: its
checkpoints are loaded, finished steps are replayed from their recorded outputs and never
run again; the step that was in flight runs again, once, and its calls carry the same
idempotency key (``<run>:<step key>``) so an upstream that honours keys applies it once.

What it shares with the Temporal engine lives in modules of its own: runs in the store
(``_run_store.py``), claiming runs under leases (``_claims.py``), schedules
(``_schedules.py``), retention (``_retention.py``), approvals and sub-flows waited for
(``_waits.py``) and a step's call (``_step_calls.py``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from patchwire.errors import RunStateError
from patchwire.flows._claims import Claims
from patchwire.flows._context import Scope, StepFailure, Suspend
from patchwire.flows._engine_common import (
    fire_due_schedules,
    purge_finished_runs,
    retry_failed_runs,
    start_child_run,
)
from patchwire.flows._interpreter import Interpreter, RunProgress
from patchwire.flows._journal import Journal
from patchwire.flows._loop import tick_until_stopped
from patchwire.flows._protocol import FlowHost
from patchwire.flows._run_store import FlowSet, RunStore
from patchwire.flows._runs import (
    FINISHED,
    ActiveRun,
    RunRecord,
    StepRecord,
    iso,
    run_event,
    to_json,
)
from patchwire.flows._schedules import Schedules
from patchwire.flows._step_calls import call_step
from patchwire.flows._waits import approval_decided, step_approval
from patchwire.flows.spec import FlowSpec
from patchwire.observability import RUNS as _RUNS_METRIC
from patchwire.observability import tracing as _observe
from patchwire.store import new_owner_id

__all__ = ["FlowEngine"]

log = logging.getLogger("patchwire.flows")


class _Effects:
    """The interpreter's effects for one run, on this engine.

    Checkpoints are queued, not awaited; what must be durable is awaited at a barrier
    before the next effect on the world (a call, an event, an approval, a sub-flow) and
    before the run's own row changes. So a step's output is always committed before
    anything that comes after it can happen — a crash repeats only the step in flight —
    while a run waits for about one commit per call instead of one per step.
    """

    def __init__(self, engine: FlowEngine, run: ActiveRun) -> None:
        self.engine = engine
        self.run = run
        self.pending: list[asyncio.Future[None]] = []
        #: what the run waits for, re-checked once its waiting row is committed: a child
        #: that ended (or an approval decided) just before could not wake it (lost wake-up)
        self.waits_on: list[Callable[[], Awaitable[bool]]] = []

    async def barrier(self) -> None:
        """Every checkpoint queued so far is committed (or its failure raised)."""
        if self.pending:
            pending, self.pending = self.pending, []
            await asyncio.gather(*pending)

    def now(self) -> float:
        return self.engine.clock()

    async def sleep(self, seconds: float) -> None:
        await self.engine.sleep(seconds)

    async def call(self, action: str, arguments: Any, connection: str | None, *,
                   idempotency_key: str) -> Any:
        await self.barrier()
        return await call_step(self.engine._host.calls, action, arguments, connection,
                               run_id=self.run.id, idempotency_key=idempotency_key,
                               end_user=self.run.end_user)

    async def checkpoint(self, key: str, kind: str, status: str, output: Any,
                         error: dict[str, Any] | None, attempts: int,
                         started_at: float, input: Any = None) -> None:
        now = self.engine.clock()
        finished = None if status == "waiting" else now
        self.pending.append(self.engine.journal.enqueue(steps=[(
            self.run.id, key, kind, status, to_json(output), to_json(error), attempts,
            started_at, finished, to_json(input))]))
        _observe.step_span(self.run.id, key, kind, status, started_at, finished)  # observability

    async def approval(self, key: str, message: Any, open_for: float) -> dict[str, Any]:
        await self.barrier()
        engine = self.engine
        state = await step_approval(engine.runs.store, self.run, key, message, open_for,
                                    engine.clock())
        if state["status"] == "pending":
            store, approval_id = engine.runs.store, state["id"]

            async def decided() -> bool:
                return await approval_decided(store, approval_id)

            self.waits_on.append(decided)
        return state

    async def child_run(self, key: str, flow: str, input: Any) -> dict[str, Any]:
        await self.barrier()
        state = await start_child_run(self.engine, self.run, key, flow, input)
        if state["status"] not in FINISHED:
            engine, child_id = self.engine, state["id"]

            async def ended() -> bool:
                return (await engine.get_run(child_id)).status in FINISHED

            self.waits_on.append(ended)
        return state

    async def emit(self, key: str, type: str, data: Any) -> str:
        await self.barrier()
        event_id = hashlib.sha256(f"{self.run.id}:{key}".encode()).hexdigest()[:32]
        await self.engine.journal.write(events=[(event_id, type, to_json(data), self.run.id,
                                                 "flow", self.engine.clock())])
        return event_id


class FlowEngine:
    """Runs flows durably in this process. ``start()`` it, start runs, ``stop()`` it.

    ``host`` gives the call path and the store (the ``Runtime`` or the ``Patchwire``
    facade); ``flows`` maps flow ids to their current definitions (a FlowRegistry works).
    ``clock`` (epoch seconds) and ``sleep`` can be replaced in tests; ``poll_interval`` is
    how often due work (timers, approvals, schedules, orphaned runs) is looked for.
    ``schedules`` and ``claims`` off: the engine runs only the runs it starts itself.
    ``claim_only``: the ids of the runs it may claim (with their sub-flow runs; the caller
    may add to it as it starts runs) — a one-off command's engine must not take queued
    runs away from the workers meant to run them.
    """

    remote = False

    def __init__(
        self, host: FlowHost, flows: Mapping[str, FlowSpec] | Any, *,
        owner: str | None = None, lease: float = 30.0, max_concurrency: int = 256,
        poll_interval: float = 1.0, clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        schedules: bool = True, claims: bool = True,
        claim_only: Collection[str] | None = None,
    ) -> None:
        self._host = host
        self._flows = FlowSet(flows)
        self.runs = RunStore(host)
        self.owner = owner or new_owner_id()
        self.lease = lease
        self._claims = Claims(host, self.owner, lease, only=claim_only)
        self._schedules = Schedules(host)
        self.max_concurrency = max_concurrency
        self.poll_interval = poll_interval
        self.clock = clock
        self.sleep = sleep
        self.schedules = schedules
        #: claim queued, due and orphaned runs from the store (a worker does; a process
        #: that only runs what it starts, like `patchwire mcp`, does not)
        self.claims = claims
        self._journal: Journal | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: runs this engine started and owns, waiting for room (FIFO)
        self._backlog: collections.deque[ActiveRun] = collections.deque()
        self._resuming: set[asyncio.Task[None]] = set()
        #: how recently finished local runs ended, for wait() without a query
        self._results: collections.OrderedDict[str, RunRecord] = collections.OrderedDict()
        self._finished: dict[str, asyncio.Event] = {}
        self._per_flow: dict[str, int] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._stopping = False
        self._last_heartbeat = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RunStateError("the flow engine is not started")
        return self._journal

    async def start(self) -> FlowEngine:
        if self._journal is None:
            self._journal = Journal(self.runs.store)
        self._stopping = False
        await self._claims.release_dead_owners()
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def stop(self) -> None:
        """Stop: running runs are released (their leases dropped) and resume elsewhere or
        at the next start, from their last checkpoint."""
        self._stopping = True
        self._backlog.clear()  # released below with the running ones
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._journal is not None:
            await self._journal.close()
            self._journal = None
        with contextlib.suppress(Exception):
            await self._claims.release()

    async def __aenter__(self) -> FlowEngine:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- flows --------------------------------------------------------------------------------

    def flows(self) -> list[FlowSpec]:
        """The current definitions of every flow this engine knows."""
        return self._flows.all()

    def use_flows(self, flows: Mapping[str, FlowSpec] | Any) -> None:
        """Reloaded definitions: runs started from now on, schedules and webhook triggers
        use ``flows``. Runs already started keep the version they started with (each run
        is pinned to its flow's digest, saved with the run), wherever they resume."""
        self._flows.replace(flows)

    def flow(self, flow_id: str) -> FlowSpec:
        return self._flows.get(flow_id)

    # -- starting and watching runs --------------------------------------------------------------

    async def start_run(self, flow_id: str, input: Any = None, *, trigger: str = "manual",
                        idempotency_key: str | None = None, parent_run_id: str | None = None,
                        parent_step: str | None = None, end_user: str | None = None) -> str:
        """Start a run; its id. With ``idempotency_key``, starting the same key again
        returns the first run's id instead of starting another. ``end_user``: the run's
        calls go through that end user's connections only."""
        run = await self.runs.new_run(self._flows, flow_id, input, trigger=trigger,
                                      idempotency_key=idempotency_key,
                                      parent_run_id=parent_run_id, parent_step=parent_step,
                                      now=self.clock(), end_user=end_user)
        now = run.created_at
        # A started engine owns the runs it starts (running when there is room, else in its
        # backlog, leased all the same); without one the run waits, queued, for any engine.
        local = self._journal is not None and not self._stopping
        run.status = "running" if local else "queued"
        row = run.row(self.owner if local else None, now + self.lease if local else None, now)
        if idempotency_key is not None or not local:
            existing = await self.runs.insert(row, run.idempotency_key)
            if existing is not None:
                return existing
        else:
            await self.journal.write(runs=[row])
        if local:
            self._finished.setdefault(run.id, asyncio.Event())
            if self._has_room(run.flow):
                self._launch(run, RunProgress())
            else:
                self._backlog.append(run)
        return run.id

    async def run(self, flow_id: str, input: Any = None, *, max_wait: float | None = None,
                  **options: Any) -> RunRecord:
        """Start a run and wait for it to finish (or to wait for something)."""
        run_id = await self.start_run(flow_id, input, **options)
        return await self.wait(run_id, max_wait=max_wait)

    async def wait(self, run_id: str, *, max_wait: float | None = None,
                   until_waiting: bool = True) -> RunRecord:
        """The run once it finished — or, with ``until_waiting``, once it waits for a timer,
        an approval or a sub-flow. TimeoutError after ``max_wait`` seconds."""
        pause = 0.01
        async with asyncio.timeout(max_wait):
            while True:
                event = self._finished.get(run_id)
                if event is not None:
                    await event.wait()
                known = self._results.get(run_id)
                # what this engine saw last is the truth unless the run moved on since
                record = (known if known is not None and known.status in FINISHED
                          else await self.get_run(run_id))
                if record.status in FINISHED or (until_waiting and record.status == "waiting"):
                    return record
                if event is None:  # another engine has it: poll, less and less often
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, self.poll_interval)

    async def get_run(self, run_id: str) -> RunRecord:
        return await self.runs.get(run_id)

    async def list_runs(self, *, flow_id: str | None = None, status: str | None = None,
                        since: float | None = None, until: float | None = None,
                        before: str | None = None, limit: int = 100,
                        end_user: str | None = None) -> list[RunRecord]:
        """Newest first; ``before`` (a run id) pages through older ones; ``end_user``: only
        that end user's runs."""
        return await self.runs.list_runs(flow_id=flow_id, status=status, since=since, until=until,
                                    before=before, limit=limit, end_user=end_user)

    async def steps(self, run_id: str) -> list[StepRecord]:
        return await self.runs.steps(run_id)

    # -- cancel and retry -----------------------------------------------------------------------

    async def cancel(self, run_id: str, *, reason: str = "cancelled") -> RunRecord:
        record = await self.runs.cancel(run_id, reason=reason, now=self.clock())
        task = self._tasks.get(run_id)
        if task is not None:
            task.cancel()
        _RUNS_METRIC.labels(record.flow_id, "cancelled").inc()  # observability
        if record.parent_run_id:
            await self._wake(record.parent_run_id)
        return record

    async def retry(self, run_id: str) -> RunRecord:
        """Run a failed (or cancelled) run again from the step that failed: finished steps
        keep their outputs and are not run again."""
        record = await self.runs.reopen(run_id, now=self.clock())
        self._results.pop(run_id, None)
        self._kick.set()
        return record

    async def retry_failed(self, *, flow_id: str | None = None, limit: int = 1000) -> list[str]:
        """Retry every dead letter (failed run), optionally of one flow."""
        return await retry_failed_runs(self, flow_id=flow_id, limit=limit)

    # -- execution ------------------------------------------------------------------------------

    def _start_backlog(self) -> None:
        if self._stopping:
            return
        waiting: list[ActiveRun] = []
        while self._backlog and len(self._tasks) < self.max_concurrency:
            run = self._backlog.popleft()
            if self._has_room(run.flow):
                self._launch(run, RunProgress())
            else:
                waiting.append(run)  # its flow is at its concurrency cap
        self._backlog.extendleft(reversed(waiting))

    def _has_room(self, flow: FlowSpec) -> bool:
        if len(self._tasks) >= self.max_concurrency:
            return False
        return flow.concurrency is None or self._per_flow.get(flow.id, 0) < flow.concurrency

    def _launch(self, run: ActiveRun, progress: RunProgress) -> None:
        self._results.pop(run.id, None)
        self._per_flow[run.flow.id] = self._per_flow.get(run.flow.id, 0) + 1
        self._finished.setdefault(run.id, asyncio.Event())
        # observability: run id in the log context, a span, run counters (see _tracing.py)
        task = asyncio.get_running_loop().create_task(
            _observe.observed_run(self._execute(run, progress), run))
        self._tasks[run.id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.pop(run.id, None)
            self._per_flow[run.flow.id] -= 1
            event = self._finished.pop(run.id, None)
            if event is not None:
                event.set()
            self._start_backlog()
            self._kick.set()

        task.add_done_callback(done)

    async def _execute(self, run: ActiveRun, progress: RunProgress) -> None:
        scope = Scope(input=run.input, run={
            "id": run.id, "flow": run.flow.id, "version": run.flow.version,
            "attempt": run.attempt, "started_at": iso(run.created_at)})
        effects = _Effects(self, run)
        interpreter = Interpreter(run.flow, effects, progress, scope)
        try:
            try:
                output = await interpreter.run()
            finally:
                if not isinstance(sys.exc_info()[1], asyncio.CancelledError):
                    await effects.barrier()  # the steps before the run's own row
        except Suspend as pause:
            run.status, run.wake_at = "waiting", pause.until
            await self._save(run, owner=None)
            for check in effects.waits_on:
                if await check():
                    await self._wake(run.id)
                    break
            return
        except StepFailure as failure:
            run.status, run.error, run.finished_at = "failed", failure.to_dict(), self.clock()
        except asyncio.CancelledError:
            return  # cancelled, or the engine stops: the checkpoints say where it was
        except Exception as exc:  # a bug must fail the run, not leave it running forever
            log.exception("run %s of flow %s failed unexpectedly", run.id, run.flow.id)
            run.status, run.finished_at = "failed", self.clock()
            run.error = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
        else:
            run.status, run.output, run.finished_at = "succeeded", output, self.clock()
        await self._save(run, owner=None)
        if run.parent_run_id:
            await self._wake(run.parent_run_id)

    async def _save(self, run: ActiveRun, *, owner: str | None,
                    lease_until: float | None = None) -> None:
        now = self.clock()
        if lease_until is None and owner is not None:
            lease_until = now + self.lease
        events = []
        if run.status in ("succeeded", "failed"):
            # committed with the run's final row: subscribers hear of every run's end once
            events.append(run_event(run.id, run.attempt, run.status, run.flow.id,
                                     run.error, now))
        await self.journal.write(runs=[run.row(owner, lease_until, now)], events=events)
        if run.status in FINISHED or run.status == "waiting":
            self._results[run.id] = run.record(now)
            while len(self._results) > 10_000:
                self._results.popitem(last=False)

    async def _resume(self, row: Any, steps: list[Any] | None = None) -> None:
        """Launch a claimed run from its checkpoints (``steps``: its flow_steps rows, when
        the caller loaded them for many runs at once)."""
        run, progress = await self.runs.stored_run(row, steps)
        self._launch(run, progress)

    # -- the loop: claims, heartbeats, schedules --------------------------------------------

    async def _loop(self) -> None:
        await tick_until_stopped(self.tick, self._kick, lambda: self.poll_interval,
                                 lambda: self._stopping)

    async def tick(self) -> int:
        """One pass: renew leases, notice cancellations, fire due schedules, claim due runs.
        How many runs it claimed (tests drive the engine with this and a fake clock)."""
        now = self.clock()
        if now - self._last_heartbeat >= self.lease / 3:
            self._last_heartbeat = now
            for run_id in await self._claims.heartbeat(now, list(self._tasks)):
                task = self._tasks.get(run_id)
                if task is not None:
                    task.cancel()
        if self.schedules:
            await self.fire_schedules(now)
        return await self._claim(now)

    async def _claim(self, now: float) -> int:
        room = self.max_concurrency - len(self._tasks)
        if room <= 0 or self._stopping or not self.claims:
            return 0
        full = [f for f, n in self._per_flow.items()
                if (spec := self._flows.get_or_none(f)) is not None
                and spec.concurrency is not None and n >= spec.concurrency]
        rows = await self._claims.claim(now, room, full=full)
        if not rows:
            return 0
        claimed = 0
        local = {r.id for r in self._backlog}
        for m in rows:  # waiters see these as local from now on
            self._finished.setdefault(m["id"], asyncio.Event())
        by_run = await self._claims.checkpoints([m["id"] for m in rows])
        for m in rows:
            if m["id"] in local:
                continue
            finishing = self._tasks.get(m["id"])
            if finishing is not None:
                # Woken during its own last moments (it just saved itself waiting, and
                # what it waits for is done): resume it once that task has ended.
                self._resume_after(finishing, dict(m))
                claimed += 1
                continue
            try:
                await self._resume(m, by_run[m["id"]])
                claimed += 1
            except Exception:
                log.exception("cannot resume run %s", m["id"])
                event = self._finished.pop(m["id"], None)
                if event is not None:
                    event.set()
        return claimed

    def _resume_after(self, task: asyncio.Task[None], row: dict[str, Any]) -> None:
        def resume(_: asyncio.Task[None]) -> None:
            if self._stopping:
                return
            later = asyncio.get_running_loop().create_task(self._resume(row))
            self._resuming.add(later)
            later.add_done_callback(self._resuming.discard)

        task.add_done_callback(resume)

    async def _wake(self, run_id: str) -> None:
        await self.runs.mark_due(run_id)
        self._kick.set()

    # -- schedules and retention -----------------------------------------------------------------

    async def fire_schedules(self, now: float) -> list[str]:
        """Start the runs of schedule slots that are due, once per slot across restarts and
        processes (the slot is the run's idempotency key)."""
        return await fire_due_schedules(self, self._schedules, now)

    async def purge(self, *, older_than: float | None = None, now: float | None = None) -> int:
        """Delete finished runs past their flow's retention (or older than ``older_than``
        seconds for every flow), with their steps. How many runs were deleted."""
        return await purge_finished_runs(self, older_than=older_than, now=now)
