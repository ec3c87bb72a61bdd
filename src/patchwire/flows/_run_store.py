"""Runs in the store, as both engines read and change them: looking runs up, listing
them, their steps, the flow versions they are pinned to, starting (idempotently),
cancelling and reopening for a retry. Claiming runs is ``_claims.py``'s; schedules and
retention have their own modules."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, cast

import jsonschema_rs
import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from patchwire.errors import (
    FlowInputError,
    RunStateError,
    UnknownFlow,
    UnknownRun,
    ValidationProblem,
)
from patchwire.flows._interpreter import RunProgress
from patchwire.flows._journal import RUN_COLUMNS
from patchwire.flows._runs import (
    COMPLETE,
    FINISHED,
    RUNS,
    STEPS,
    VERSIONS,
    ActiveRun,
    RunRecord,
    StepRecord,
    digest_of,
    run_record,
)
from patchwire.flows.spec import FlowSpec
from patchwire.ids import new_id
from patchwire.ports import HasStore
from patchwire.store import Store
from patchwire.store.end_users import check_end_user

__all__ = ["FlowSet", "RunStore", "scoped_key"]


def scoped_key(key: str | None, end_user: str | None) -> str | None:
    """The idempotency key a run is stored under: an end user's keys are theirs alone — the
    same key from another end user (or the operator) starts another run rather than
    answering with this one (which would hand them a run that is not theirs). Hashed, so
    a 200-character end user and key fit the column."""
    if key is None or end_user is None:
        return key
    blob = f"{end_user}\x00{key}".encode()
    return "eu:" + hashlib.sha256(blob).hexdigest()


class FlowSet:
    """The flows an engine knows: their current definitions (a mapping from ids, a
    FlowRegistry works) and the input validators of their versions."""

    def __init__(self, flows: Mapping[str, FlowSpec] | Any) -> None:
        self._flows = flows
        self._validators: dict[str, jsonschema_rs.Validator] = {}

    def all(self) -> list[FlowSpec]:
        values = getattr(self._flows, "values", None)
        return list(values() if values is not None else self._flows)

    def replace(self, flows: Mapping[str, FlowSpec] | Any) -> None:
        self._flows = flows

    def get(self, flow_id: str) -> FlowSpec:
        getter = getattr(self._flows, "get", None)
        try:
            spec = self._flows[flow_id] if getter is None else getter(flow_id)
        except (KeyError, UnknownFlow):
            spec = None
        if spec is None:
            raise UnknownFlow(f"no flow named {flow_id!r}")
        return cast(FlowSpec, spec)

    def get_or_none(self, flow_id: str) -> FlowSpec | None:
        try:
            return self.get(flow_id)
        except UnknownFlow:
            return None

    def validate_input(self, flow: FlowSpec, digest: str, value: Any) -> None:
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


class RunStore:
    """The runs, steps and flow versions of a store (read when used: an engine may be
    built before its store is opened)."""

    def __init__(self, host: HasStore) -> None:
        self._host = host
        self._versions: dict[tuple[str, str], FlowSpec] = {}
        self._digests: dict[int, tuple[FlowSpec, str]] = {}

    @property
    def store(self) -> Store:
        return self._host.store

    # -- flow versions ---------------------------------------------------------------------

    async def remember_version(self, flow: FlowSpec, now: float) -> str:
        """The flow's digest, its definition saved once (runs are pinned to it)."""
        known = self._digests.get(id(flow))
        if known is not None and known[0] is flow:
            return known[1]
        digest = digest_of(flow)
        self._digests[id(flow)] = (flow, digest)
        if (flow.id, digest) in self._versions:
            return digest
        store = self.store
        dialect = postgresql if store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(VERSIONS).values(
            flow_id=flow.id, digest=digest, version=flow.version,
            definition=flow.model_dump(mode="json", by_alias=True), created_at=now,
        ).on_conflict_do_nothing()
        with store._errors(f"save flow {flow.id} version {flow.version}"):
            async with store.engine.begin() as conn:
                await conn.execute(stmt)
        self._versions[(flow.id, digest)] = flow
        return digest

    async def version(self, flow_id: str, digest: str) -> FlowSpec:
        found = self._versions.get((flow_id, digest))
        if found is not None:
            return found
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(VERSIONS.c.definition).where(
                VERSIONS.c.flow_id == flow_id, VERSIONS.c.digest == digest))).first()
        if row is None:
            raise UnknownFlow(f"flow {flow_id!r} version {digest} is not in the store")
        spec = FlowSpec.model_validate(row[0])
        self._versions[(flow_id, digest)] = spec
        return spec

    # -- starting runs ---------------------------------------------------------------------

    async def new_run(self, flows: FlowSet, flow_id: str, input: Any, *, trigger: str,
                      idempotency_key: str | None, parent_run_id: str | None,
                      parent_step: str | None, now: float,
                      end_user: str | None = None) -> ActiveRun:
        """A run of the flow's current version, its input checked (FlowInputError), acting
        for ``end_user`` (None: the operator's run)."""
        flow = flows.get(flow_id)
        if end_user is not None:
            try:
                check_end_user(end_user)
            except ValueError as exc:
                raise FlowInputError(f"the end user of a run of flow {flow_id} is invalid: "
                                     f"{exc}", [ValidationProblem("end_user", str(exc))],
                                     ) from exc
        value = {} if input is None else input
        digest = await self.remember_version(flow, now)
        flows.validate_input(flow, digest, value)
        return ActiveRun(id=new_id(), flow=flow, digest=digest, trigger=trigger, input=value,
                         parent_run_id=parent_run_id, parent_step=parent_step,
                         idempotency_key=scoped_key(idempotency_key, end_user),
                         attempt=1, created_at=now, end_user=end_user)

    async def insert(self, row: tuple[Any, ...], key: str | None) -> str | None:
        """Insert unless a run with this key exists; that run's id, or None if inserted."""
        store = self.store
        values = dict(zip(RUN_COLUMNS, row, strict=True))
        for col in ("input", "output", "error"):
            values[col] = None if values[col] is None else orjson.loads(values[col])
        dialect = postgresql if store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(RUNS).values(**values).on_conflict_do_nothing(
            index_elements=["idempotency_key"])
        with store._errors("start a run"):
            async with store.engine.begin() as conn:
                result = await conn.execute(stmt)
                if result.rowcount or key is None:
                    return None
                found = await conn.scalar(select(RUNS.c.id).where(
                    RUNS.c.idempotency_key == key))
        return str(found)

    async def stored_run(self, row: Any, steps: list[Any] | None = None,
                         ) -> tuple[ActiveRun, RunProgress]:
        """A stored run (its flow_runs row) and its progress from its checkpoints
        (``steps``: its (key, status, output) rows, when loaded for many runs at once)."""
        flow = await self.version(row["flow_id"], row["flow_digest"])
        run = ActiveRun(id=row["id"], flow=flow, digest=row["flow_digest"],
                        trigger=row["trigger"], input=row["input"],
                        parent_run_id=row["parent_run_id"], parent_step=row["parent_step"],
                        idempotency_key=row["idempotency_key"], attempt=row["attempt"],
                        created_at=row["created_at"], end_user=row["end_user"])
        progress = RunProgress()
        if steps is None:
            async with self.store.engine.connect() as conn:
                steps = list((await conn.execute(
                    select(STEPS.c.key, STEPS.c.status, STEPS.c.output)
                    .where(STEPS.c.run_id == run.id))).all())
        for key, status, output in steps:
            if status in COMPLETE:
                progress.done[key] = output
            elif status == "waiting":
                progress.waiting[key] = output
        return run, progress

    async def row(self, run_id: str) -> Any | None:
        """The run's flow_runs row (its mapping), or None."""
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).first()
        return None if row is None else row._mapping

    # -- reading runs ----------------------------------------------------------------------

    async def get(self, run_id: str) -> RunRecord:
        row = await self.row(run_id)
        if row is None:
            raise UnknownRun(f"no run with id {run_id!r}")
        return run_record(row)

    async def list_runs(self, *, flow_id: str | None = None, status: str | None = None,
                   since: float | None = None, until: float | None = None,
                   before: str | None = None, limit: int = 100,
                   end_user: str | None = None) -> list[RunRecord]:
        """Newest first; ``before`` (a run id) pages through older ones; ``end_user``: only
        the runs acting for that end user."""
        stmt = select(RUNS).order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
        if end_user is not None:
            stmt = stmt.where(RUNS.c.end_user == end_user)
        if flow_id is not None:
            stmt = stmt.where(RUNS.c.flow_id == flow_id)
        if status is not None:
            stmt = stmt.where(RUNS.c.status == status)
        if since is not None:
            stmt = stmt.where(RUNS.c.created_at >= since)
        if until is not None:
            stmt = stmt.where(RUNS.c.created_at < until)
        if before is not None:
            anchor = await self.get(before)
            if end_user is not None and anchor.end_user != end_user:
                # another end user's run does not exist for this one, not even as an anchor
                raise UnknownRun(f"no run with id {before!r}")
            # the bare `<=` lets the (created_at) index bound the scan; the rest breaks ties
            stmt = stmt.where(RUNS.c.created_at <= anchor.created_at, (
                (RUNS.c.created_at < anchor.created_at) | (RUNS.c.id < anchor.id)))
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(stmt.limit(max(1, min(limit, 10_000))))).all()
        return [run_record(r._mapping) for r in rows]

    async def steps(self, run_id: str) -> list[StepRecord]:
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(STEPS).where(STEPS.c.run_id == run_id)
                                       .order_by(STEPS.c.started_at, STEPS.c.finished_at,
                                                 STEPS.c.key))).all()
        return [StepRecord(**r._mapping) for r in rows]

    async def poll(self, run_id: str, *, until_waiting: bool, poll_interval: float,
                   sleep: Callable[[float], Any] = asyncio.sleep) -> RunRecord:
        """The run once it finished (or waits, with ``until_waiting``), read from the store
        less and less often: for a run that executes elsewhere."""
        pause = 0.01
        while True:
            record = await self.get(run_id)
            if record.status in FINISHED or (until_waiting and record.status == "waiting"):
                return record
            await sleep(pause)
            pause = min(pause * 2, poll_interval)

    async def may_progress(self, run_id: str, horizon: float) -> bool:
        """Whether the run or one of its sub-flow runs is queued, running, or waits for a
        time before ``horizon`` (epoch seconds) — else nothing happens to it before then."""
        stmt = select(RUNS.c.id).where(
            (RUNS.c.id == run_id) | (RUNS.c.parent_run_id == run_id),
            RUNS.c.status.in_(("queued", "running"))
            | ((RUNS.c.status == "waiting") & (RUNS.c.wake_at <= horizon))).limit(1)
        async with self.store.engine.connect() as conn:
            return (await conn.execute(stmt)).first() is not None

    # -- changing runs ---------------------------------------------------------------------

    async def mark_due(self, run_id: str) -> None:
        """A waiting run is due now (what it waits for happened)."""
        async with self.store.engine.begin() as conn:
            await conn.execute(update(RUNS).where(
                RUNS.c.id == run_id, RUNS.c.status == "waiting").values(wake_at=0.0))

    async def cancel(self, run_id: str, *, reason: str, now: float) -> RunRecord:
        """Mark a queued, running or waiting run cancelled (RunStateError otherwise)."""
        async with self.store.engine.begin() as conn:
            result = await conn.execute(update(RUNS).where(
                RUNS.c.id == run_id, RUNS.c.status.in_(("queued", "running", "waiting")),
            ).values(status="cancelled", owner=None, lease_until=None, wake_at=None,
                     finished_at=now, updated_at=now,
                     error={"code": "cancelled", "message": reason}))
        if not result.rowcount:
            record = await self.get(run_id)
            raise RunStateError(f"run {run_id} is {record.status}; only queued, running or "
                                "waiting runs can be cancelled")
        return await self.get(run_id)

    async def reopen(self, run_id: str, *, now: float, owner: str | None = None,
                     lease_until: float | None = None) -> RunRecord:
        """Queue a failed (or cancelled) run again from the step that failed: finished
        steps keep their outputs (RunStateError for a run in another state)."""
        async with self.store.engine.begin() as conn:
            result = await conn.execute(update(RUNS).where(
                RUNS.c.id == run_id, RUNS.c.status.in_(("failed", "cancelled")),
            ).values(status="queued", error=None, output=None, finished_at=None,
                     attempt=RUNS.c.attempt + 1, updated_at=now, owner=owner,
                     lease_until=lease_until, wake_at=None))
            if result.rowcount:
                await conn.execute(delete(STEPS).where(
                    STEPS.c.run_id == run_id, STEPS.c.status.not_in(COMPLETE)))
        if not result.rowcount:
            record = await self.get(run_id)
            raise RunStateError(f"run {run_id} is {record.status}; only failed or cancelled "
                                "runs can be retried")
        return await self.get(run_id)
