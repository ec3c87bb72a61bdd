"""The Temporal engine: the same flows, run as Temporal workflows (``PATCHWIRE_ENGINE=temporal``).

Every run is one execution of a single generic workflow, ``patchwire.flow``, whose code is
the flow interpreter (``_interpreter.py``) — the same semantics as the embedded engine.
The workflow is deterministic: everything that touches the world is an activity, run by
``patchwire worker`` processes::

    patchwire serve ──start/cancel/signal──▶ Temporal ◀──poll── patchwire worker (xN)
          │                                                        │ activities:
          └──────────── runs, steps, approvals (PostgreSQL) ◀──────┘ call, approval,
                                                                      sub-flow, emit, save

Durability comes from Temporal's history: a finished step is never run again because the
workflow replays it from history, not from the store. The store keeps what the runs API
and the dashboard show (run rows, step checkpoints, approvals, events): checkpoints travel
with the run's next activity, so a run costs about one activity per call.

Waiting (timers, approvals, sub-flows) uses the interpreter's own suspension: the workflow
records the run as waiting, sleeps on a durable timer or until woken by the ``wake`` signal,
and replays the interpreter from its progress. Wake-ups come from the store: an approval
decided anywhere (API, CLI, dashboard) or a child run that ended marks the run due, and
every engine's loop signals the due runs' workflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import and_, func, select, update
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.service import RPCError
from temporalio.worker import Worker

from patchwire.config import Settings
from patchwire.errors import EngineUnavailable, RunStateError
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
    RUNS,
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
from patchwire.store import new_owner_id

__all__ = ["FlowWorkflow", "TemporalEngine", "TemporalOptions"]

log = logging.getLogger("patchwire.flows.temporal")

#: the owner of every run on Temporal: embedded engines never claim these rows
TEMPORAL_OWNER = "temporal"
#: a run of a flow with a ``concurrency`` cap, stored but not started: it waits for room
#: (see ``TemporalEngine._admit``); never claimed by an embedded engine, never restarted
TEMPORAL_HELD = "temporal-held"
#: Temporal runs are never leased by an embedded engine
_NEVER = 1e15
WORKFLOW = "patchwire.flow"
#: activities are retried by Temporal only when their worker died or something unexpected
#: escaped them (a call's own retries happen inside it)
_ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)


@dataclass(frozen=True, slots=True)
class TemporalOptions:
    """Where Temporal is and how runs use it: the settings ``temporal_*`` (their defaults),
    or other values for one engine."""

    address: str = Settings.temporal_address
    namespace: str = Settings.temporal_namespace
    task_queue: str = Settings.temporal_task_queue
    #: how long one activity attempt may take before Temporal gives it to another
    #: worker (a worker killed mid-call is noticed after this); the engine that
    #: starts a run decides it for that run
    activity_timeout: float = Settings.temporal_activity_timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> TemporalOptions:
        return cls(address=settings.temporal_address, namespace=settings.temporal_namespace,
                   task_queue=settings.temporal_task_queue,
                   activity_timeout=settings.temporal_activity_timeout)


# -- the workflow (deterministic: no I/O, no wall clock, no randomness of its own) ----------


class _WorkflowEffects:
    """The interpreter's effects inside the workflow: each effect on the world is an
    activity; checkpoints queue and go with the next activity."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.run: dict[str, Any] = job["run"]
        self.timeout = timedelta(seconds=float(job["activity_timeout"]))
        self.pending: list[list[Any]] = []
        #: what a suspended run waits for: re-checked once it is recorded as waiting
        self.waits_on: list[list[str]] = []
        #: the next activity marks the run running again (after a start or a wake-up)
        self.resumed = True

    def now(self) -> float:
        return workflow.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def activity(self, name: str, payload: dict[str, Any], *, local: bool = True) -> Any:
        """Run an activity with the queued checkpoints. Bookkeeping (approvals, sub-flow
        starts, events, suspending, finishing) is idempotent, so it runs as a local
        activity: no round trip through the server, and running it again after a crash
        is harmless. Calls are not (a ticket opened twice is two tickets): they are
        regular activities, recorded in the history before the run goes on."""
        taken, self.pending = self.pending, []
        payload = {"run": self.run, "checkpoints": taken, "resumed": self.resumed, **payload}
        try:
            if local:
                result = await workflow.execute_local_activity(
                    name, payload, start_to_close_timeout=self.timeout,
                    retry_policy=_ACTIVITY_RETRY)
            else:
                result = await workflow.execute_activity(
                    name, payload, start_to_close_timeout=self.timeout,
                    retry_policy=_ACTIVITY_RETRY)
        except ActivityError as exc:
            self.pending[:0] = taken  # written again with the next one (upserts)
            if isinstance(exc.cause, TemporalCancelledError):
                # a step timeout or the run's cancel: asyncio must see a cancellation
                raise asyncio.CancelledError from exc
            raise
        self.resumed = False
        return result

    async def call(self, action: str, arguments: Any, connection: str | None, *,
                   idempotency_key: str) -> Any:
        # the run's end user travels in every payload's "run" (see _start_workflow)
        try:
            result = await self.activity("patchwire.call", {
                "action": action, "arguments": arguments, "connection": connection,
                "idempotency_key": idempotency_key}, local=False)
        except ActivityError as exc:
            raise StepFailure("internal_error", f"the call activity failed: {exc.cause or exc}",
                              retryable=True) from exc
        if result.get("error") is not None:
            err = result["error"]
            raise StepFailure(err["code"], err["message"], retryable=bool(err["retryable"]))
        return result.get("result")

    async def checkpoint(self, key: str, kind: str, status: str, output: Any,
                         error: dict[str, Any] | None, attempts: int, started_at: float,
                         input: Any = None) -> None:
        finished = None if status == "waiting" else self.now()
        self.pending.append([key, kind, status, output, error, attempts, started_at, finished,
                             input])

    async def approval(self, key: str, message: Any, open_for: float) -> dict[str, Any]:
        state = cast(dict[str, Any], await self.activity("patchwire.approval", {
            "key": key, "message": message, "open_for": open_for}))
        if state["status"] == "pending":
            self.waits_on.append(["approval", state["id"]])
        return state

    async def child_run(self, key: str, flow: str, input: Any) -> dict[str, Any]:
        state = cast(dict[str, Any], await self.activity("patchwire.child_run", {
            "key": key, "flow": flow, "input": input}))
        if state["status"] not in FINISHED:
            self.waits_on.append(["run", state["id"]])
        return state

    async def emit(self, key: str, type: str, data: Any) -> str:
        return cast(str, await self.activity("patchwire.emit", {
            "key": key, "type": type, "data": data}))


#: parsed definitions by digest: the same digest is the same document, so a worker parses
#: each flow version once (the workflow stays deterministic: the result is the same)
_DEFINITIONS: dict[str, FlowSpec] = {}


def _definition(digest: str, document: dict[str, Any]) -> FlowSpec:
    spec = _DEFINITIONS.get(digest)
    if spec is None:
        if len(_DEFINITIONS) > 1000:
            _DEFINITIONS.clear()
        spec = _DEFINITIONS[digest] = FlowSpec.model_validate(document)
    return spec


@workflow.defn(name=WORKFLOW, sandboxed=False)
class FlowWorkflow:
    """One run of any flow: the interpreter over the flow's stored definition."""

    def __init__(self) -> None:
        self._woken = False

    @workflow.signal(name="wake")
    def wake(self) -> None:
        """What the run waits for may have happened (approval decided, sub-flow ended)."""
        self._woken = True

    @workflow.run
    async def run(self, job: dict[str, Any]) -> dict[str, Any]:
        flow = _definition(job["run"]["digest"], job["definition"])
        progress = RunProgress(done=dict(job.get("done") or {}),
                               waiting=dict(job.get("waiting") or {}))
        effects = _WorkflowEffects(job)
        draw = workflow.random().random
        info = job["run"]
        while True:
            scope = Scope(input=job["input"], run={
                "id": info["id"], "flow": flow.id, "version": flow.version,
                "attempt": info["attempt"], "started_at": iso(info["created_at"])})
            try:
                output = await Interpreter(flow, effects, progress, scope, random=draw).run()
            except Suspend as pause:
                self._woken = False  # before the re-check, so no wake-up falls between
                waits_on, effects.waits_on = effects.waits_on, []
                already = await effects.activity("patchwire.suspend", {
                    "wake_at": pause.until, "waits_on": waits_on})
                if not already:
                    timeout = (None if pause.until is None
                               else max(0.0, pause.until - effects.now()))
                    with contextlib.suppress(TimeoutError):
                        await workflow.wait_condition(lambda: self._woken, timeout=timeout)
                effects.resumed = True
                continue
            except StepFailure as failure:
                result = {"status": "failed", "output": None, "error": failure.to_dict()}
            except asyncio.CancelledError:
                raise  # cancelled: the store already says so
            except Exception as exc:  # a bug must fail the run, not retry the task forever
                result = {"status": "failed", "output": None, "error": {
                    "code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}}
            else:
                result = {"status": "succeeded", "output": output, "error": None}
            break
        await effects.activity("patchwire.finish", result)
        return result


# -- the engine: starts, cancels and wakes runs; its activities run in workers ------------


class TemporalEngine:
    """A flow engine whose runs execute on Temporal (the ``Engine`` protocol, as the
    embedded engine; it shares that engine's parts, not its class).

    Starting, listing, cancelling and retrying runs work as on the embedded engine (same
    store, same API); execution happens in the workers (:meth:`worker`). Its loop fires
    schedules, signals runs that became due (approvals decided, sub-flows ended) and
    restarts runs whose start never reached Temporal. ``options``: where Temporal is
    (default: the host's settings ``temporal_*``).
    """

    remote = True

    def __init__(self, host: FlowHost, flows: Mapping[str, FlowSpec] | Any, *,
                 options: TemporalOptions | None = None, client: Client | None = None,
                 owner: str | None = None, lease: float = 30.0, max_concurrency: int = 256,
                 poll_interval: float = 1.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 schedules: bool = True, claims: bool = False) -> None:
        # ``claims``: accepted for the embedded engine's signature; runs on Temporal are
        # never claimed from the store
        del claims
        self._host = host
        self._flows = FlowSet(flows)
        self.runs = RunStore(host)
        self.owner = owner or new_owner_id()
        self.lease = lease
        self._claims = Claims(host, self.owner, lease)
        self._schedules = Schedules(host)
        #: activities run at once by a worker of this engine (:meth:`executor`)
        self.max_concurrency = max_concurrency
        self.poll_interval = poll_interval
        self.clock = clock
        self.sleep = sleep
        self.schedules = schedules
        settings = getattr(host, "settings", None)
        self.options = options or (TemporalOptions.from_settings(settings)
                                   if isinstance(settings, Settings) else TemporalOptions())
        self._client = client
        self._journal: Journal | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._stopping = False

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RunStateError("the Temporal engine is not started")
        return self._client

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RunStateError("the flow engine is not started")
        return self._journal

    async def start(self) -> TemporalEngine:
        if self._client is None:
            try:
                self._client = await Client.connect(self.options.address,
                                                    namespace=self.options.namespace)
            except RuntimeError as exc:
                raise EngineUnavailable(f"cannot reach Temporal at {self.options.address} "
                                f"(namespace {self.options.namespace}): {exc}") from exc
        if self._journal is None:
            self._journal = Journal(self.runs.store)
        self._stopping = False
        await self._claims.release_dead_owners()
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(tick_until_stopped(
                self.tick, self._kick, lambda: self.poll_interval, lambda: self._stopping))
        return self

    async def stop(self) -> None:
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._journal is not None:
            await self._journal.close()
            self._journal = None

    async def __aenter__(self) -> TemporalEngine:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def worker(self, **options: Any) -> Worker:
        """A Temporal worker running flow workflows and their activities in this process
        (``await worker.run()``; the engine must be started)."""
        acts = _Activities(self)
        return Worker(self.client, task_queue=self.options.task_queue,
                      workflows=[FlowWorkflow],
                      activities=[acts.call, acts.approval, acts.child_run, acts.emit,
                                  acts.suspend, acts.finish], **options)

    def executor(self, *, concurrency: int) -> Worker:
        """The worker of ``patchwire worker``: at most ``concurrency`` activities at once."""
        return self.worker(max_concurrent_activities=concurrency)

    # -- flows ---------------------------------------------------------------------------------

    def flows(self) -> list[FlowSpec]:
        return self._flows.all()

    def use_flows(self, flows: Mapping[str, FlowSpec] | Any) -> None:
        self._flows.replace(flows)

    def flow(self, flow_id: str) -> FlowSpec:
        return self._flows.get(flow_id)

    # -- starting runs -------------------------------------------------------------------------

    async def start_run(self, flow_id: str, input: Any = None, *, trigger: str = "manual",
                        idempotency_key: str | None = None, parent_run_id: str | None = None,
                        parent_step: str | None = None, end_user: str | None = None) -> str:
        run = await self.runs.new_run(self._flows, flow_id, input, trigger=trigger,
                                      idempotency_key=idempotency_key,
                                      parent_run_id=parent_run_id, parent_step=parent_step,
                                      now=self.clock(), end_user=end_user)
        run.status, now = "queued", run.created_at
        capped = run.flow.concurrency is not None
        # queued until its first activity: a start that never reached Temporal (a crash
        # right here) is found queued by a loop and started then
        existing = await self.runs.insert(
            run.row(TEMPORAL_HELD if capped else TEMPORAL_OWNER, _NEVER, now),
            run.idempotency_key)
        if existing is not None:
            return existing
        if capped:
            await self._admit(run.flow.id)
        else:
            await self._start_workflow(run, RunProgress())
        return run.id

    async def run(self, flow_id: str, input: Any = None, *, max_wait: float | None = None,
                  **options: Any) -> RunRecord:
        run_id = await self.start_run(flow_id, input, **options)
        return await self.wait(run_id, max_wait=max_wait)
    async def _admit(self, flow_id: str) -> None:
        """Start held runs of a capped flow, oldest first, while fewer than its
        ``concurrency`` are in flight (queued for Temporal or running; a run waiting for
        an approval or a timer holds no room, as on the embedded engine). The cap holds
        across every engine sharing the store: the count and the admission are one
        transaction under the SQLite write lock or a PostgreSQL advisory lock per flow."""
        spec = self._flows.get_or_none(flow_id)
        cap = spec.concurrency if spec is not None else None
        store = self.runs.store
        now = self.clock()
        async with store.engine.connect() as conn:
            conn = await conn.execution_options(patchwire_sqlite_immediate=True)
            async with conn.begin():
                if store.engine.dialect.name == "postgresql":
                    await conn.execute(select(func.pg_advisory_xact_lock(
                        func.hashtext(f"patchwire.flow-concurrency.{flow_id}"))))
                held = select(RUNS.c.id).where(
                    RUNS.c.flow_id == flow_id, RUNS.c.owner == TEMPORAL_HELD,
                    RUNS.c.status == "queued").order_by(RUNS.c.created_at)
                if cap is not None:
                    in_flight = (await conn.execute(select(func.count()).where(
                        RUNS.c.flow_id == flow_id, RUNS.c.owner == TEMPORAL_OWNER,
                        RUNS.c.status.in_(("queued", "running"))))).scalar_one()
                    if in_flight >= cap:
                        return
                    held = held.limit(cap - in_flight)
                admitted = [row.id for row in (await conn.execute(held)).all()]
                if not admitted:
                    return
                await conn.execute(update(RUNS).where(RUNS.c.id.in_(admitted)).values(
                    owner=TEMPORAL_OWNER, updated_at=now))
        for run_id in admitted:
            # queued for Temporal now: if this start fails, _restart_lost sends it again
            await self._launch_stored(run_id, replace=True)

    async def _admit_held(self) -> None:
        """Admit what room allows for every flow with held runs (after crashes, caps
        changed, runs ended elsewhere)."""
        async with self.runs.store.engine.connect() as conn:
            flows = (await conn.execute(select(RUNS.c.flow_id).where(
                RUNS.c.owner == TEMPORAL_HELD, RUNS.c.status == "queued").distinct())).all()
        for (flow_id,) in flows:
            try:
                await self._admit(flow_id)
            except EngineUnavailable as exc:
                log.warning("%s", exc)
                return

    async def _start_workflow(self, run: ActiveRun, progress: RunProgress, *,
                              replace: bool = False) -> None:
        """Start the run's workflow; ``replace``: a retry, whose previous execution may
        still be closing (it recorded the failure and is returning)."""
        job = {
            # the end user goes with the run into every activity: its calls, approvals
            # and sub-flows act for them (a worker never looks it up in the store)
            "run": {"id": run.id, "flow_id": run.flow.id, "digest": run.digest,
                    "attempt": run.attempt, "created_at": run.created_at,
                    "end_user": run.end_user},
            "definition": run.flow.model_dump(mode="json", by_alias=True),
            "input": run.input, "done": progress.done, "waiting": progress.waiting,
            "activity_timeout": self.options.activity_timeout,
        }
        try:
            await self.client.start_workflow(
                WORKFLOW, job, id=run.id, task_queue=self.options.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=(WorkflowIDConflictPolicy.TERMINATE_EXISTING if replace
                                    else WorkflowIDConflictPolicy.FAIL))
        except WorkflowAlreadyStartedError:
            pass  # started by another engine's loop meanwhile
        except RPCError as exc:
            raise EngineUnavailable(f"run {run.id} is queued but Temporal at "
                            f"{self.options.address} did not take it ({exc}); it is "
                            "started again by the next engine loop") from exc

    async def _launch_stored(self, run_id: str, *, replace: bool = False) -> None:
        """Start the workflow of a stored run from its checkpoints (retry, lost start)."""
        row = await self.runs.row(run_id)
        if row is None:
            return
        run, progress = await self.runs.stored_run(row)
        await self._start_workflow(run, progress, replace=replace)

    async def wait(self, run_id: str, *, max_wait: float | None = None,
                   until_waiting: bool = True) -> RunRecord:
        async with asyncio.timeout(max_wait):
            if not until_waiting:
                # the end of a run: a long poll on its workflow rather than polling the store
                with contextlib.suppress(RPCError, WorkflowFailureError):
                    await self.client.get_workflow_handle(run_id).result()
            return await self.runs.poll(run_id, until_waiting=until_waiting,
                                        poll_interval=self.poll_interval)

    async def get_run(self, run_id: str) -> RunRecord:
        return await self.runs.get(run_id)

    async def list_runs(self, *, flow_id: str | None = None, status: str | None = None,
                        since: float | None = None, until: float | None = None,
                        before: str | None = None, limit: int = 100,
                        end_user: str | None = None) -> list[RunRecord]:
        return await self.runs.list_runs(flow_id=flow_id, status=status, since=since, until=until,
                                    before=before, limit=limit, end_user=end_user)

    async def steps(self, run_id: str) -> list[StepRecord]:
        return await self.runs.steps(run_id)

    # -- cancel, retry, wake -------------------------------------------------------------------

    async def cancel(self, run_id: str, *, reason: str = "cancelled") -> RunRecord:
        record = await self.runs.cancel(run_id, reason=reason, now=self.clock())
        _RUNS_METRIC.labels(record.flow_id, "cancelled").inc()  # observability
        if record.parent_run_id:
            await self._wake(record.parent_run_id)
        with contextlib.suppress(RPCError):
            await self.client.get_workflow_handle(run_id).cancel()
        return record

    async def retry(self, run_id: str) -> RunRecord:
        """Run a failed (or cancelled) run again from the step that failed, on Temporal:
        finished steps keep their outputs and are not run again."""
        record = await self.runs.get(run_id)
        spec = self._flows.get_or_none(record.flow_id)
        capped = spec is not None and spec.concurrency is not None
        record = await self.runs.reopen(
            run_id, now=self.clock(), owner=TEMPORAL_HELD if capped else TEMPORAL_OWNER,
            lease_until=_NEVER)
        self._kick.set()
        if capped:
            await self._admit(record.flow_id)
        else:
            await self._launch_stored(run_id, replace=True)
        return record

    async def retry_failed(self, *, flow_id: str | None = None, limit: int = 1000) -> list[str]:
        return await retry_failed_runs(self, flow_id=flow_id, limit=limit)

    # -- schedules and retention ---------------------------------------------------------------

    async def fire_schedules(self, now: float) -> list[str]:
        return await fire_due_schedules(self, self._schedules, now)

    async def purge(self, *, older_than: float | None = None, now: float | None = None) -> int:
        return await purge_finished_runs(self, older_than=older_than, now=now)

    # -- wake-ups and the loop -----------------------------------------------------------------

    async def _wake(self, run_id: str) -> None:
        """Signal the run's workflow; when Temporal cannot be told, mark the run due in
        the store instead, so an engine loop signals it again at its next tick."""
        try:
            await self.client.get_workflow_handle(run_id).signal("wake")
        except RPCError:
            await self.runs.mark_due(run_id)

    async def tick(self) -> int:
        """One pass: fire due schedules, signal due runs, restart lost starts, admit held
        runs; none is claimed (0), runs on Temporal are never claimed from the store."""
        if self.schedules:
            await self.fire_schedules(self.clock())
        await self._signal_due()
        await self._restart_lost()
        await self._admit_held()
        return 0

    async def _signal_due(self) -> None:
        """Waiting runs whose wait is over or whose approval or sub-flow is decided (the
        store marks them due) get a wake-up signal; one Temporal could not take is
        marked due again for the next tick."""
        now = self.clock()
        async with self.runs.store.engine.begin() as conn:
            due = (await conn.execute(update(RUNS).where(
                RUNS.c.owner == TEMPORAL_OWNER, RUNS.c.status == "waiting",
                RUNS.c.wake_at <= now).values(wake_at=None).returning(RUNS.c.id))).all()
        for (run_id,) in due:
            await self._wake(run_id)

    async def _restart_lost(self, grace: float = 30.0) -> None:
        now = self.clock()
        async with self.runs.store.engine.connect() as conn:
            lost = (await conn.execute(select(RUNS.c.id).where(
                RUNS.c.owner == TEMPORAL_OWNER, RUNS.c.status == "queued",
                RUNS.c.updated_at < now - grace).limit(100))).all()
        for (run_id,) in lost:
            try:
                await self._launch_stored(run_id)
            except EngineUnavailable as exc:
                log.warning("%s", exc)
                return


class _Activities:
    """What the workflows do to the world, in a worker process, with its engine."""

    def __init__(self, engine: TemporalEngine) -> None:
        self.engine = engine

    async def _run(self, info: dict[str, Any]) -> ActiveRun:
        flow = await self.engine.runs.version(info["flow_id"], info["digest"])
        return ActiveRun(id=info["id"], flow=flow, digest=info["digest"], trigger="",
                    input=None, parent_run_id=None, parent_step=None, idempotency_key=None,
                    attempt=info["attempt"], created_at=info["created_at"],
                    end_user=info.get("end_user"))

    async def _record(self, payload: dict[str, Any]) -> None:
        """The checkpoints that came with an activity, and the run running again."""
        run_id = payload["run"]["id"]
        rows = [(run_id, key, kind, status, to_json(output), to_json(error), attempts,
                 started, finished, to_json(given))
                for key, kind, status, output, error, attempts, started, finished, given
                in payload["checkpoints"]]
        if rows:
            await self.engine.journal.write(steps=rows)
        if payload.get("resumed"):
            async with self.engine.runs.store.engine.begin() as conn:
                await conn.execute(update(RUNS).where(
                    RUNS.c.id == run_id, RUNS.c.status.in_(("queued", "waiting"))).values(
                    status="running", wake_at=None, updated_at=self.engine.clock()))

    @activity.defn(name="patchwire.call")
    async def call(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self._record(payload)
        try:
            result = await call_step(
                self.engine._host.calls, payload["action"], payload["arguments"],
                payload["connection"], run_id=payload["run"]["id"],
                idempotency_key=payload["idempotency_key"],
                end_user=payload["run"].get("end_user"))
        except StepFailure as failure:
            return {"error": {"code": failure.code, "message": failure.message,
                              "retryable": failure.retryable}}
        return {"result": result}

    @activity.defn(name="patchwire.approval")
    async def approval(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self._record(payload)
        run = await self._run(payload["run"])
        return await step_approval(self.engine.runs.store, run, payload["key"], payload["message"],
                                   float(payload["open_for"]), self.engine.clock())

    @activity.defn(name="patchwire.child_run")
    async def child_run(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self._record(payload)
        run = await self._run(payload["run"])
        return await start_child_run(self.engine, run, payload["key"], payload["flow"],
                                     payload["input"])

    @activity.defn(name="patchwire.emit")
    async def emit(self, payload: dict[str, Any]) -> str:
        await self._record(payload)
        run_id = payload["run"]["id"]
        event_id = hashlib.sha256(f"{run_id}:{payload['key']}".encode()).hexdigest()[:32]
        await self.engine.journal.write(events=[(event_id, payload["type"],
                                                 to_json(payload["data"]), run_id, "flow",
                                                 self.engine.clock())])
        return event_id

    @activity.defn(name="patchwire.suspend")
    async def suspend(self, payload: dict[str, Any]) -> bool:
        """Record the run as waiting; True if what it waits for already happened."""
        await self._record(payload)
        engine = self.engine
        run_id = payload["run"]["id"]
        async with engine.runs.store.engine.begin() as conn:
            await conn.execute(update(RUNS).where(
                RUNS.c.id == run_id, RUNS.c.status.in_(("queued", "running"))).values(
                status="waiting", wake_at=payload["wake_at"], updated_at=engine.clock()))
        flow_id = payload["run"]["flow_id"]
        spec = engine._flows.get_or_none(flow_id)
        if spec is not None and spec.concurrency is not None:
            await engine._admit(flow_id)  # a waiting run holds no room
        for kind, ident in payload["waits_on"]:
            if kind == "approval" and await approval_decided(engine.runs.store, ident):
                return True
            if kind == "run" and (await engine.get_run(ident)).status in FINISHED:
                return True
        return False

    @activity.defn(name="patchwire.finish")
    async def finish(self, payload: dict[str, Any]) -> None:
        payload = {**payload, "resumed": False}
        await self._record(payload)
        engine = self.engine
        info = payload["run"]
        status = payload["status"]
        now = engine.clock()
        async with engine.runs.store.engine.begin() as conn:
            result = await conn.execute(update(RUNS).where(and_(
                RUNS.c.id == info["id"], RUNS.c.status.not_in(FINISHED))).values(
                status=status, output=payload["output"], error=payload["error"],
                wake_at=None, finished_at=now, updated_at=now))
            row = (await conn.execute(select(RUNS.c.flow_id, RUNS.c.parent_run_id).where(
                RUNS.c.id == info["id"]))).first()
        if not result.rowcount or row is None:
            return  # cancelled meanwhile, or finished by an earlier attempt of this one
        flow_id, parent = row
        await engine.journal.write(events=[run_event(info["id"], info["attempt"], status,
                                                      flow_id, payload["error"], now)])
        _RUNS_METRIC.labels(flow_id, status).inc()  # observability
        if parent:
            await engine._wake(parent)
        spec = engine._flows.get_or_none(flow_id)
        if spec is not None and spec.concurrency is not None:
            await engine._admit(flow_id)  # its room is free: the next held run starts
