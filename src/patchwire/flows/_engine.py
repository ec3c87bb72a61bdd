"""The embedded engine: durable flow runs on the store (SQLite or PostgreSQL).

A run is a row; each finished step is a checkpoint row written (with group commit, see
``_journal.py``) before the run goes on. After a crash, a run resumes where it was: its
checkpoints are loaded, finished steps are replayed from their recorded outputs and never
run again; the step that was in flight runs again, once, and its calls carry the same
idempotency key (``<run>:<step key>``) so an upstream that honours keys applies it once.

Ownership: the engine that runs a run holds a lease on it (``owner``, ``lease_until``),
renewed while it runs. Runs that wait (a timer, an approval, a sub-flow) are released and
claimed again when due; runs of an engine that died are claimed once its lease expires, or
at once when it ran on this host and its process is gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import jsonschema_rs
import orjson
from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from patchwire.errors import (
    CallError,
    ConfigError,
    FlowInputError,
    RunStateError,
    StoreError,
    UnknownApproval,
    UnknownFlow,
    UnknownRun,
    ValidationProblem,
)
from patchwire.flows._context import Scope, StepFailure, Suspend
from patchwire.flows._interpreter import Interpreter, RunProgress
from patchwire.flows._journal import Journal
from patchwire.flows.spec import FlowSpec
from patchwire.ids import new_id
from patchwire.observability import RUNS as _RUNS_METRIC
from patchwire.observability import tracing as _observe
from patchwire.store import dead_local_owners, new_owner_id
from patchwire.store.models import (
    FlowRunRow,
    FlowScheduleRow,
    FlowStepRow,
    FlowVersionRow,
)
from patchwire.store.tools import ApprovalRecord, ToolRepository

if TYPE_CHECKING:
    from patchwire._patchwire import Patchwire
    from patchwire.http import PreparedRequest

__all__ = ["FINISHED", "FlowEngine", "RunRecord", "StepRecord", "create_engine"]

log = logging.getLogger("patchwire.flows")

_RUNS = cast(Table, FlowRunRow.__table__)
_STEPS = cast(Table, FlowStepRow.__table__)
_VERSIONS = cast(Table, FlowVersionRow.__table__)
_SCHEDULES = cast(Table, FlowScheduleRow.__table__)

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
#: step statuses that count as done on replay
_COMPLETE = ("succeeded", "continued", "fallback")


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True)
class RunRecord:
    """A run as the API and CLI show it."""

    id: str
    flow_id: str
    flow_version: int
    status: str
    trigger: str
    input: Any
    output: Any
    error: Any
    parent_run_id: str | None
    attempt: int
    created_at: float
    updated_at: float
    finished_at: float | None
    wake_at: float | None

    @property
    def dead_letter(self) -> bool:
        """Failed for good: it ran out of retries or hit a fail step."""
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "flow": self.flow_id, "version": self.flow_version,
                "status": self.status, "trigger": self.trigger, "input": self.input,
                "output": self.output, "error": self.error,
                "parent_run_id": self.parent_run_id, "attempt": self.attempt,
                "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
                "finished_at": _iso(self.finished_at), "wake_at": _iso(self.wake_at)}


@dataclass(frozen=True)
class StepRecord:
    run_id: str
    key: str
    kind: str
    status: str
    output: Any
    error: Any
    attempts: int
    started_at: float
    finished_at: float | None
    #: what the step was given: a call's arguments, an approval's message, ...
    input: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "status": self.status,
                "input": self.input, "output": self.output, "error": self.error,
                "attempts": self.attempts,
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at)}


def _run_record(m: Any) -> RunRecord:
    return RunRecord(
        id=m["id"], flow_id=m["flow_id"], flow_version=m["flow_version"], status=m["status"],
        trigger=m["trigger"], input=m["input"], output=m["output"], error=m["error"],
        parent_run_id=m["parent_run_id"], attempt=m["attempt"], created_at=m["created_at"],
        updated_at=m["updated_at"], finished_at=m["finished_at"], wake_at=m["wake_at"])


def _run_event(run_id: str, attempt: int, status: str, flow_id: str, error: Any,
               now: float) -> tuple[Any, ...]:
    """An ``events`` row (journal column order) for a run that ended."""
    event_id = hashlib.sha256(f"run:{run_id}:{attempt}:{status}".encode()).hexdigest()[:32]
    data = {"run_id": run_id, "flow": flow_id, "status": status, "attempt": attempt}
    if error:
        data["error"] = error
    return (event_id, f"run.{status}", _json(data), run_id, "run", now)


def digest_of(flow: FlowSpec) -> str:
    blob = orjson.dumps(flow.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:32]


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i: i + size] for i in range(0, len(items), size)]


async def call_action(pw: Patchwire, action: str, arguments: Any, connection: str | None, *,
                      run_id: str, idempotency_key: str) -> Any:
    """A flow step's call: the action's result, or a StepFailure saying whether retrying
    the step may help. The idempotency key goes in the connector's idempotency header
    (unless the request has one), so a step re-run after a crash is applied once."""
    try:
        compiled = pw.compiled_action(action)
    except CallError as exc:
        raise StepFailure(exc.code, exc.message, retryable=False) from exc
    except Exception as exc:
        raise StepFailure("unknown_action", str(exc), retryable=False) from exc
    header = compiled.connector.retry.idempotency_header

    def keyed(req: PreparedRequest, _: Any) -> None:
        if header and not compiled.idempotent and not any(
                k.lower() == header.lower() for k in req.headers):
            req.headers[header] = idempotency_key

    try:
        outcome = await pw.execute(action, arguments, connection=connection,
                                   run_id=run_id, adjust_request=keyed)
    except CallError as exc:
        transient = exc.code in ("timeout", "transport_error", "rate_limited",
                                 "circuit_open", "upstream_error")
        raise StepFailure(exc.code, exc.message, retryable=transient) from exc
    except Exception as exc:
        raise StepFailure(getattr(exc, "code", "error"), str(exc),
                          retryable=False) from exc
    return outcome.result


@dataclass(slots=True)
class _Run:
    """A run this engine is executing."""

    id: str
    flow: FlowSpec
    digest: str
    trigger: str
    input: Any
    parent_run_id: str | None
    parent_step: str | None
    idempotency_key: str | None
    attempt: int
    created_at: float
    status: str = "running"
    output: Any = None
    error: Any = None
    wake_at: float | None = None
    finished_at: float | None = None

    def row(self, owner: str | None, lease_until: float | None, now: float) -> tuple[Any, ...]:
        return (self.id, self.flow.id, self.flow.version, self.digest, self.status,
                self.trigger, _json(self.input), _json(self.output), _json(self.error),
                self.parent_run_id, self.parent_step, self.idempotency_key, owner, lease_until,
                self.wake_at, self.attempt, self.created_at, now, self.finished_at)


class _Effects:
    """The interpreter's effects for one run, on this engine.

    Checkpoints are queued, not awaited; what must be durable is awaited at a barrier
    before the next effect on the world (a call, an event, an approval, a sub-flow) and
    before the run's own row changes. So a step's output is always committed before
    anything that comes after it can happen — a crash repeats only the step in flight —
    while a run waits for about one commit per call instead of one per step.
    """

    def __init__(self, engine: FlowEngine, run: _Run) -> None:
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
        return await call_action(self.engine.pw, action, arguments, connection,
                                 run_id=self.run.id, idempotency_key=idempotency_key)

    async def checkpoint(self, key: str, kind: str, status: str, output: Any,
                         error: dict[str, Any] | None, attempts: int,
                         started_at: float, input: Any = None) -> None:
        now = self.engine.clock()
        finished = None if status == "waiting" else now
        self.pending.append(self.engine.journal.enqueue(steps=[(
            self.run.id, key, kind, status, _json(output), _json(error), attempts, started_at,
            finished, _json(input))]))
        _observe.step_span(self.run.id, key, kind, status, started_at, finished)  # observability

    async def approval(self, key: str, message: Any, open_for: float) -> dict[str, Any]:
        await self.barrier()
        state = await self.engine._approval(self.run, key, message, open_for)
        if state["status"] == "pending":
            repo, approval_id = ToolRepository(self.engine.pw.store), state["id"]

            async def decided() -> bool:
                return (await repo.get_approval(approval_id)).status != "pending"

            self.waits_on.append(decided)
        return state

    async def child_run(self, key: str, flow: str, input: Any) -> dict[str, Any]:
        await self.barrier()
        state = await self.engine._child_run(self.run, key, flow, input)
        if state["status"] not in FINISHED:
            engine, child_id = self.engine, state["id"]

            async def ended() -> bool:
                return (await engine.get_run(child_id)).status in FINISHED

            self.waits_on.append(ended)
        return state

    async def emit(self, key: str, type: str, data: Any) -> str:
        await self.barrier()
        event_id = hashlib.sha256(f"{self.run.id}:{key}".encode()).hexdigest()[:32]
        await self.engine.journal.write(events=[(event_id, type, _json(data), self.run.id,
                                                 "flow", self.engine.clock())])
        return event_id


class FlowEngine:
    """Runs flows durably in this process. ``start()`` it, start runs, ``stop()`` it.

    ``flows`` maps flow ids to their current definitions (a FlowRegistry works). ``clock``
    (epoch seconds) and ``sleep`` can be replaced in tests; ``poll_interval`` is how often
    due work (timers, approvals, schedules, orphaned runs) is looked for. ``schedules``
    and ``claims`` off: the engine runs only the runs it starts itself.
    """

    #: runs execute elsewhere (Temporal workers): start() connects, even where this
    #: process runs no flows itself
    remote = False

    def __init__(
        self, pw: Patchwire, flows: Mapping[str, FlowSpec] | Any, *,
        owner: str | None = None, lease: float = 30.0, max_concurrency: int = 256,
        poll_interval: float = 1.0, clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        schedules: bool = True, claims: bool = True,
    ) -> None:
        self.pw = pw
        self._flows = flows
        self.owner = owner or new_owner_id()
        self.lease = lease
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
        self._backlog: collections.deque[_Run] = collections.deque()
        self._resuming: set[asyncio.Task[None]] = set()
        #: how recently finished local runs ended, for wait() without a query
        self._results: collections.OrderedDict[str, RunRecord] = collections.OrderedDict()
        self._finished: dict[str, asyncio.Event] = {}
        self._per_flow: dict[str, int] = {}
        self._versions: dict[tuple[str, str], FlowSpec] = {}
        self._digests: dict[int, tuple[FlowSpec, str]] = {}
        self._validators: dict[str, jsonschema_rs.Validator] = {}
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
        await self.pw.open()
        if self._journal is None:
            self._journal = Journal(self.pw.store)
        self._stopping = False
        await self._release_dead_owners()
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
            async with self.pw.store.engine.begin() as conn:
                await conn.execute(update(_RUNS).where(
                    _RUNS.c.owner == self.owner, _RUNS.c.status == "running").values(
                    owner=None, lease_until=None))

    async def __aenter__(self) -> FlowEngine:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- flows --------------------------------------------------------------------------------

    def flows(self) -> list[FlowSpec]:
        """The current definitions of every flow this engine knows."""
        values = getattr(self._flows, "values", None)
        return list(values() if values is not None else self._flows)

    def use_flows(self, flows: Mapping[str, FlowSpec] | Any) -> None:
        """Reloaded definitions: runs started from now on, schedules and webhook triggers
        use ``flows``. Runs already started keep the version they started with (each run
        is pinned to its flow's digest, saved with the run), wherever they resume."""
        self._flows = flows

    def flow(self, flow_id: str) -> FlowSpec:
        getter = getattr(self._flows, "get", None)
        try:
            spec = self._flows[flow_id] if getter is None else getter(flow_id)
        except (KeyError, UnknownFlow):
            spec = None
        if spec is None:
            raise UnknownFlow(f"no flow named {flow_id!r}")
        return cast(FlowSpec, spec)

    async def _remember_version(self, flow: FlowSpec) -> str:
        known = self._digests.get(id(flow))
        if known is not None and known[0] is flow:
            return known[1]
        digest = digest_of(flow)
        self._digests[id(flow)] = (flow, digest)
        if (flow.id, digest) in self._versions:
            return digest
        store = self.pw.store
        dialect = postgresql if store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(_VERSIONS).values(
            flow_id=flow.id, digest=digest, version=flow.version,
            definition=flow.model_dump(mode="json", by_alias=True), created_at=self.clock(),
        ).on_conflict_do_nothing()
        with store._errors(f"save flow {flow.id} version {flow.version}"):
            async with store.engine.begin() as conn:
                await conn.execute(stmt)
        self._versions[(flow.id, digest)] = flow
        return digest

    async def _version(self, flow_id: str, digest: str) -> FlowSpec:
        found = self._versions.get((flow_id, digest))
        if found is not None:
            return found
        async with self.pw.store.engine.connect() as conn:
            row = (await conn.execute(select(_VERSIONS.c.definition).where(
                _VERSIONS.c.flow_id == flow_id, _VERSIONS.c.digest == digest))).first()
        if row is None:
            raise UnknownFlow(f"flow {flow_id!r} version {digest} is not in the store")
        spec = FlowSpec.model_validate(row[0])
        self._versions[(flow_id, digest)] = spec
        return spec

    def _validate_input(self, flow: FlowSpec, digest: str, value: Any) -> None:
        validator = self._validators.get(digest)
        if validator is None:
            validator = self._validators[digest] = jsonschema_rs.validator_for(
                flow.input, validate_formats=True)
        if validator.is_valid(value):
            return
        problems = [ValidationProblem("$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.instance_path), e.message)
            for e in validator.iter_errors(value)]
        raise FlowInputError(f"the input of flow {flow.id} is invalid: "
                             + "; ".join(map(str, problems)), problems)

    # -- starting and watching runs --------------------------------------------------------------

    async def start_run(self, flow_id: str, input: Any = None, *, trigger: str = "manual",
                        idempotency_key: str | None = None, parent_run_id: str | None = None,
                        parent_step: str | None = None) -> str:
        """Start a run; its id. With ``idempotency_key``, starting the same key again
        returns the first run's id instead of starting another."""
        run = await self._new_run(flow_id, input, trigger=trigger,
                                  idempotency_key=idempotency_key,
                                  parent_run_id=parent_run_id, parent_step=parent_step)
        now = run.created_at
        # A started engine owns the runs it starts (running when there is room, else in its
        # backlog, leased all the same); without one the run waits, queued, for any engine.
        local = self._journal is not None and not self._stopping
        run.status = "running" if local else "queued"
        row = run.row(self.owner if local else None, now + self.lease if local else None, now)
        if idempotency_key is not None or not local:
            existing = await self._insert_row(row, idempotency_key)
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

    async def _new_run(self, flow_id: str, input: Any, *, trigger: str,
                       idempotency_key: str | None, parent_run_id: str | None,
                       parent_step: str | None) -> _Run:
        """A run of the flow's current version, its input checked (FlowInputError)."""
        flow = self.flow(flow_id)
        value = {} if input is None else input
        digest = await self._remember_version(flow)
        self._validate_input(flow, digest, value)
        return _Run(id=new_id(), flow=flow, digest=digest, trigger=trigger, input=value,
                    parent_run_id=parent_run_id, parent_step=parent_step,
                    idempotency_key=idempotency_key, attempt=1, created_at=self.clock())

    async def _insert_row(self, row: tuple[Any, ...], key: str | None) -> str | None:
        """Insert unless a run with this key exists; that run's id, or None if inserted."""
        from patchwire.flows._journal import RUN_COLUMNS

        store = self.pw.store
        values = dict(zip(RUN_COLUMNS, row, strict=True))
        for col in ("input", "output", "error"):
            values[col] = None if values[col] is None else orjson.loads(values[col])
        dialect = postgresql if store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(_RUNS).values(**values).on_conflict_do_nothing(
            index_elements=["idempotency_key"])
        with store._errors("start a run"):
            async with store.engine.begin() as conn:
                result = await conn.execute(stmt)
                if result.rowcount or key is None:
                    return None
                found = await conn.scalar(select(_RUNS.c.id).where(
                    _RUNS.c.idempotency_key == key))
        return str(found)

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
        async with self.pw.store.engine.connect() as conn:
            row = (await conn.execute(select(_RUNS).where(_RUNS.c.id == run_id))).first()
        if row is None:
            raise UnknownRun(f"no run with id {run_id!r}")
        return _run_record(row._mapping)

    async def list_runs(self, *, flow_id: str | None = None, status: str | None = None,
                        since: float | None = None, until: float | None = None,
                        before: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Newest first; ``before`` (a run id) pages through older ones."""
        stmt = select(_RUNS).order_by(_RUNS.c.created_at.desc(), _RUNS.c.id.desc())
        if flow_id is not None:
            stmt = stmt.where(_RUNS.c.flow_id == flow_id)
        if status is not None:
            stmt = stmt.where(_RUNS.c.status == status)
        if since is not None:
            stmt = stmt.where(_RUNS.c.created_at >= since)
        if until is not None:
            stmt = stmt.where(_RUNS.c.created_at < until)
        if before is not None:
            anchor = await self.get_run(before)
            # the bare `<=` lets the (created_at) index bound the scan; the rest breaks ties
            stmt = stmt.where(_RUNS.c.created_at <= anchor.created_at, (
                (_RUNS.c.created_at < anchor.created_at) | (_RUNS.c.id < anchor.id)))
        async with self.pw.store.engine.connect() as conn:
            rows = (await conn.execute(stmt.limit(max(1, min(limit, 10_000))))).all()
        return [_run_record(r._mapping) for r in rows]

    async def steps(self, run_id: str) -> list[StepRecord]:
        async with self.pw.store.engine.connect() as conn:
            rows = (await conn.execute(select(_STEPS).where(_STEPS.c.run_id == run_id)
                                       .order_by(_STEPS.c.started_at, _STEPS.c.finished_at,
                                                 _STEPS.c.key))).all()
        return [StepRecord(**r._mapping) for r in rows]

    # -- cancel and retry -----------------------------------------------------------------------

    async def cancel(self, run_id: str, *, reason: str = "cancelled") -> RunRecord:
        now = self.clock()
        async with self.pw.store.engine.begin() as conn:
            result = await conn.execute(update(_RUNS).where(
                _RUNS.c.id == run_id, _RUNS.c.status.in_(("queued", "running", "waiting")),
            ).values(status="cancelled", owner=None, lease_until=None, wake_at=None,
                     finished_at=now, updated_at=now,
                     error={"code": "cancelled", "message": reason}))
        if not result.rowcount:
            record = await self.get_run(run_id)
            raise RunStateError(f"run {run_id} is {record.status}; only queued, running or "
                                "waiting runs can be cancelled")
        task = self._tasks.get(run_id)
        if task is not None:
            task.cancel()
        record = await self.get_run(run_id)
        _RUNS_METRIC.labels(record.flow_id, "cancelled").inc()  # observability
        if record.parent_run_id:
            await self._wake(record.parent_run_id)
        return record

    async def retry(self, run_id: str) -> RunRecord:
        """Run a failed (or cancelled) run again from the step that failed: finished steps
        keep their outputs and are not run again."""
        now = self.clock()
        async with self.pw.store.engine.begin() as conn:
            result = await conn.execute(update(_RUNS).where(
                _RUNS.c.id == run_id, _RUNS.c.status.in_(("failed", "cancelled")),
            ).values(status="queued", error=None, output=None, finished_at=None,
                     attempt=_RUNS.c.attempt + 1, updated_at=now, owner=None,
                     lease_until=None, wake_at=None))
            if result.rowcount:
                await conn.execute(delete(_STEPS).where(
                    _STEPS.c.run_id == run_id, _STEPS.c.status.not_in(_COMPLETE)))
        if not result.rowcount:
            record = await self.get_run(run_id)
            raise RunStateError(f"run {run_id} is {record.status}; only failed or cancelled "
                                "runs can be retried")
        self._results.pop(run_id, None)
        self._kick.set()
        return await self.get_run(run_id)

    async def retry_failed(self, *, flow_id: str | None = None, limit: int = 1000) -> list[str]:
        """Retry every dead letter (failed run), optionally of one flow."""
        failed = await self.list_runs(flow_id=flow_id, status="failed", limit=limit)
        done = []
        for record in failed:
            with contextlib.suppress(RunStateError):
                await self.retry(record.id)
                done.append(record.id)
        return done

    # -- execution ------------------------------------------------------------------------------

    def _start_backlog(self) -> None:
        if self._stopping:
            return
        waiting: list[_Run] = []
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

    def _launch(self, run: _Run, progress: RunProgress) -> None:
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

    async def _execute(self, run: _Run, progress: RunProgress) -> None:
        scope = Scope(input=run.input, run={
            "id": run.id, "flow": run.flow.id, "version": run.flow.version,
            "attempt": run.attempt, "started_at": _iso(run.created_at)})
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

    async def _save(self, run: _Run, *, owner: str | None,
                    lease_until: float | None = None) -> None:
        now = self.clock()
        if lease_until is None and owner is not None:
            lease_until = now + self.lease
        events = []
        if run.status in ("succeeded", "failed"):
            # committed with the run's final row: subscribers hear of every run's end once
            events.append(_run_event(run.id, run.attempt, run.status, run.flow.id,
                                     run.error, now))
        await self.journal.write(runs=[run.row(owner, lease_until, now)], events=events)
        if run.status in FINISHED or run.status == "waiting":
            self._results[run.id] = RunRecord(
                id=run.id, flow_id=run.flow.id, flow_version=run.flow.version,
                status=run.status, trigger=run.trigger, input=run.input, output=run.output,
                error=run.error, parent_run_id=run.parent_run_id, attempt=run.attempt,
                created_at=run.created_at, updated_at=now, finished_at=run.finished_at,
                wake_at=run.wake_at)
            while len(self._results) > 10_000:
                self._results.popitem(last=False)

    async def _resume(self, row: Any, steps: list[Any] | None = None) -> None:
        """Launch a claimed run from its checkpoints (``steps``: its flow_steps rows, when
        the caller loaded them for many runs at once)."""
        run, progress = await self._stored_run(row, steps)
        self._launch(run, progress)

    async def _stored_run(self, row: Any, steps: list[Any] | None = None,
                          ) -> tuple[_Run, RunProgress]:
        """A stored run (its flow_runs row) and its progress from its checkpoints."""
        flow = await self._version(row["flow_id"], row["flow_digest"])
        run = _Run(id=row["id"], flow=flow, digest=row["flow_digest"], trigger=row["trigger"],
                   input=row["input"], parent_run_id=row["parent_run_id"],
                   parent_step=row["parent_step"], idempotency_key=row["idempotency_key"],
                   attempt=row["attempt"], created_at=row["created_at"])
        progress = RunProgress()
        if steps is None:
            async with self.pw.store.engine.connect() as conn:
                steps = list((await conn.execute(
                    select(_STEPS.c.key, _STEPS.c.status, _STEPS.c.output)
                    .where(_STEPS.c.run_id == run.id))).all())
        for key, status, output in steps:
            if status in _COMPLETE:
                progress.done[key] = output
            elif status == "waiting":
                progress.waiting[key] = output
        return run, progress

    # -- the loop: claims, heartbeats, schedules --------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except (StoreError, DBAPIError) as exc:
                # a busy or briefly unreachable database: the next tick tries again
                log.warning("flow engine tick: %s; trying again", str(exc).splitlines()[0])
            except Exception:
                log.exception("flow engine tick failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_interval)
            self._kick.clear()

    async def tick(self) -> int:
        """One pass: renew leases, notice cancellations, fire due schedules, claim due runs.
        How many runs it claimed (tests drive the engine with this and a fake clock)."""
        now = self.clock()
        if now - self._last_heartbeat >= self.lease / 3:
            await self._heartbeat(now)
        if self.schedules:
            await self.fire_schedules(now)
        return await self._claim(now)

    async def _heartbeat(self, now: float) -> None:
        self._last_heartbeat = now
        async with self.pw.store.engine.begin() as conn:
            await conn.execute(update(_RUNS).where(
                _RUNS.c.owner == self.owner, _RUNS.c.status == "running").values(
                lease_until=now + self.lease))
            if self._tasks:
                cancelled = (await conn.execute(select(_RUNS.c.id).where(
                    _RUNS.c.id.in_(list(self._tasks)), _RUNS.c.status == "cancelled"))).all()
            else:
                cancelled = []
        for (run_id,) in cancelled:
            task = self._tasks.get(run_id)
            if task is not None:
                task.cancel()

    def _due(self, now: float) -> Any:
        return (
            # queued by an engine that runs them elsewhere (Temporal) when it has an owner
            ((_RUNS.c.status == "queued") & _RUNS.c.owner.is_(None))
            | ((_RUNS.c.status == "waiting") & (_RUNS.c.wake_at <= now))
            | ((_RUNS.c.status == "running") & (_RUNS.c.owner.is_(None)))
            | ((_RUNS.c.status == "running") & (_RUNS.c.lease_until < now)))

    async def _claim(self, now: float) -> int:
        room = self.max_concurrency - len(self._tasks)
        if room <= 0 or self._stopping or not self.claims:
            return 0
        full = [f for f, n in self._per_flow.items()
                if (spec := self._flow_or_none(f)) is not None and spec.concurrency is not None
                and n >= spec.concurrency]
        due = self._due(now)
        pick = select(_RUNS.c.id).where(due)
        if full:
            pick = pick.where(_RUNS.c.flow_id.not_in(full))
        pick = pick.order_by(_RUNS.c.created_at).limit(room)
        # One statement, so SQLite takes the write lock first (a read-then-write
        # transaction could not upgrade past another writer); ``due`` is repeated outside
        # the subquery so that PostgreSQL re-checks it on a row another engine just took.
        async with self.pw.store.engine.begin() as conn:
            rows = (await conn.execute(
                update(_RUNS).where(_RUNS.c.id.in_(pick.scalar_subquery()), due).values(
                    status="running", owner=self.owner, lease_until=now + self.lease,
                    wake_at=None, updated_at=now).returning(*_RUNS.c))).all()
        if not rows:
            return 0
        claimed = 0
        local = {r.id for r in self._backlog}
        for row in rows:  # waiters see these as local from now on
            self._finished.setdefault(row._mapping["id"], asyncio.Event())
        # every claimed run's checkpoints in one query (after a restart that is hundreds
        # of runs; one query each took about a second per thousand)
        by_run: dict[str, list[Any]] = {row._mapping["id"]: [] for row in rows}
        async with self.pw.store.engine.connect() as conn:
            for chunk in _chunks(list(by_run), 500):
                for run_id, key, status, output in (await conn.execute(
                        select(_STEPS.c.run_id, _STEPS.c.key, _STEPS.c.status,
                               _STEPS.c.output).where(_STEPS.c.run_id.in_(chunk)))).all():
                    by_run[run_id].append((key, status, output))
        for row in rows:
            m = row._mapping
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

    def _flow_or_none(self, flow_id: str) -> FlowSpec | None:
        try:
            return self.flow(flow_id)
        except UnknownFlow:
            return None

    async def _release_dead_owners(self) -> None:
        """Runs held by engines on this host whose process is gone are free at once (no
        need to wait for their leases to expire after a crash)."""
        async with self.pw.store.engine.connect() as conn:
            owners = [r[0] for r in (await conn.execute(
                select(_RUNS.c.owner).where(_RUNS.c.status == "running",
                                            _RUNS.c.owner.is_not(None)).distinct())).all()]
        dead = dead_local_owners(owners, me=self.owner)
        if dead:
            async with self.pw.store.engine.begin() as conn:
                await conn.execute(update(_RUNS).where(
                    _RUNS.c.owner.in_(dead), _RUNS.c.status == "running").values(
                    owner=None, lease_until=None))

    async def _wake(self, run_id: str) -> None:
        await self._mark_due(run_id)
        self._kick.set()

    async def _mark_due(self, run_id: str) -> None:
        """A waiting run is due now (what it waits for happened)."""
        async with self.pw.store.engine.begin() as conn:
            await conn.execute(update(_RUNS).where(
                _RUNS.c.id == run_id, _RUNS.c.status == "waiting").values(wake_at=0.0))

    # -- approvals and sub-flows -----------------------------------------------------------------

    async def _approval(self, run: _Run, key: str, message: Any,
                        open_for: float) -> dict[str, Any]:
        repo = ToolRepository(self.pw.store)
        approval_id = hashlib.sha256(f"{run.id}:{key}".encode()).hexdigest()[:32]
        try:
            found = await repo.get_approval(approval_id)
        except UnknownApproval:
            now = datetime.fromtimestamp(self.clock(), UTC)
            found = ApprovalRecord(
                id=approval_id, kind="flow", subject=f"{run.flow.id}.{key}", target=run.id,
                connection=None,
                arguments={"message": message, "run_id": run.id, "flow": run.flow.id,
                           "step": key},
                fingerprint=hashlib.sha256(f"flow:{run.id}:{key}".encode()).hexdigest(),
                session_id=None, status="pending", requested_at=now,
                expires_at=now + timedelta(seconds=open_for))
            await repo.add_approval(found)
        expires = found.expires_at.timestamp() if found.expires_at else None
        return {"status": found.effective_status(datetime.fromtimestamp(self.clock(), UTC)),
                "decided_by": found.decided_by, "reason": found.reason,
                "expires_at": expires, "id": found.id}

    async def _child_run(self, run: _Run, key: str, flow_id: str,
                         input: Any) -> dict[str, Any]:
        child_id = await self.start_run(flow_id, input, trigger="flow",
                                        idempotency_key=f"sub:{run.id}:{key}",
                                        parent_run_id=run.id, parent_step=key)
        child = await self.get_run(child_id)
        return {"status": child.status, "output": child.output, "error": child.error,
                "id": child.id}

    # -- schedules and retention -----------------------------------------------------------------

    async def fire_schedules(self, now: float) -> list[str]:
        """Start the runs of schedule slots that are due, once per slot across restarts and
        processes (the slot is the run's idempotency key)."""
        from croniter import croniter

        started: list[str] = []
        for flow in self.flows():
            for index, schedule in enumerate(flow.trigger.schedule):
                key = f"{flow.id}#{index}"
                last = await self._last_slot(key, now)
                tz = ZoneInfo(schedule.timezone)
                slots: list[float] = []
                cursor = croniter(schedule.cron, datetime.fromtimestamp(last, tz))
                while len(slots) < 1000:
                    slot = cast(datetime, cursor.get_next(datetime)).timestamp()
                    if slot > now:
                        break
                    slots.append(slot)
                if not slots:
                    continue
                if schedule.missed == "skip":
                    fire = [slots[-1]] if now - slots[-1] < self.poll_interval * 2 else []
                elif schedule.missed == "once":
                    fire = [slots[-1]]
                else:
                    fire = slots
                for slot in fire:
                    started.append(await self.start_run(
                        flow.id, dict(schedule.input), trigger="schedule",
                        idempotency_key=f"schedule:{key}:{int(slot)}"))
                await self._set_last_slot(key, slots[-1])
        return started

    async def _last_slot(self, key: str, now: float) -> float:
        async with self.pw.store.engine.connect() as conn:
            last = await conn.scalar(select(_SCHEDULES.c.last_slot).where(
                _SCHEDULES.c.key == key))
        if last is None:
            await self._set_last_slot(key, now)  # a new schedule starts from now
            return now
        return float(last)

    async def _set_last_slot(self, key: str, slot: float) -> None:
        store = self.pw.store
        dialect = postgresql if store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(_SCHEDULES).values(key=key, last_slot=slot)
        stmt = stmt.on_conflict_do_update(index_elements=["key"],
                                          set_={"last_slot": stmt.excluded.last_slot})
        async with store.engine.begin() as conn:
            await conn.execute(stmt)

    async def purge(self, *, older_than: float | None = None, now: float | None = None) -> int:
        """Delete finished runs past their flow's retention (or older than ``older_than``
        seconds for every flow), with their steps. How many runs were deleted."""
        now = self.clock() if now is None else now
        rules: list[tuple[str | None, float]] = []
        if older_than is not None:
            rules.append((None, older_than))
        else:
            rules.extend((f.id, f.retention) for f in self.flows() if f.retention is not None)
        deleted = 0
        async with self.pw.store.engine.begin() as conn:
            for flow_id, age in rules:
                cond = [_RUNS.c.status.in_(FINISHED), _RUNS.c.finished_at < now - age]
                if flow_id is not None:
                    cond.append(_RUNS.c.flow_id == flow_id)
                ids = select(_RUNS.c.id).where(*cond).scalar_subquery()
                await conn.execute(delete(_STEPS).where(_STEPS.c.run_id.in_(ids)))
                result = await conn.execute(delete(_RUNS).where(*cond))
                deleted += result.rowcount or 0
        return deleted


def create_engine(pw: Patchwire, flows: Mapping[str, FlowSpec] | Any,
                  **options: Any) -> FlowEngine:
    """The engine the settings ask for (``engine``): the embedded one, or one running
    flows on Temporal (needs ``pip install 'patchwire[temporal]'``)."""
    if pw.settings.engine == "temporal":
        try:
            from patchwire.flows._temporal import TemporalEngine
        except ImportError as exc:
            raise ConfigError("engine 'temporal' needs the Temporal SDK: "
                              "pip install 'patchwire[temporal]'") from exc
        return TemporalEngine(pw, flows, **options)
    if pw.settings.engine != "embedded":
        raise ConfigError(f"engine must be 'embedded' or 'temporal', got "
                          f"{pw.settings.engine!r}")
    return FlowEngine(pw, flows, **options)
