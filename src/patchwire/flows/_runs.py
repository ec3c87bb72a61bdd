"""Runs as both engines hold and show them: the run being executed, its stored row's
shape, the records the API and CLI show, and the event a run's end publishes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table

from patchwire.flows.spec import FlowSpec
from patchwire.store.models import FlowRunRow, FlowScheduleRow, FlowStepRow, FlowVersionRow

__all__ = [
    "COMPLETE",
    "FINISHED",
    "RUNS",
    "SCHEDULES",
    "STEPS",
    "VERSIONS",
    "ActiveRun",
    "RunRecord",
    "StepRecord",
    "digest_of",
    "iso",
    "run_event",
    "run_record",
    "to_json",
]

RUNS = cast(Table, FlowRunRow.__table__)
STEPS = cast(Table, FlowStepRow.__table__)
VERSIONS = cast(Table, FlowVersionRow.__table__)
SCHEDULES = cast(Table, FlowScheduleRow.__table__)

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
#: step statuses that count as done on replay
COMPLETE = ("succeeded", "continued", "fallback")


def to_json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def digest_of(flow: FlowSpec) -> str:
    blob = orjson.dumps(flow.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:32]


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
    #: who the run acts for: its steps call through this end user's connections only
    #: (None: an operator's run, any connection)
    end_user: str | None = None

    @property
    def dead_letter(self) -> bool:
        """Failed for good: it ran out of retries or hit a fail step."""
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "flow": self.flow_id, "version": self.flow_version,
                "status": self.status, "trigger": self.trigger, "input": self.input,
                "output": self.output, "error": self.error,
                "parent_run_id": self.parent_run_id, "attempt": self.attempt,
                "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
                "finished_at": iso(self.finished_at), "wake_at": iso(self.wake_at),
                "end_user": self.end_user}


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
                "started_at": iso(self.started_at), "finished_at": iso(self.finished_at)}


def run_record(m: Any) -> RunRecord:
    """The record of a ``flow_runs`` row (its mapping)."""
    return RunRecord(
        id=m["id"], flow_id=m["flow_id"], flow_version=m["flow_version"], status=m["status"],
        trigger=m["trigger"], input=m["input"], output=m["output"], error=m["error"],
        parent_run_id=m["parent_run_id"], attempt=m["attempt"], created_at=m["created_at"],
        updated_at=m["updated_at"], finished_at=m["finished_at"], wake_at=m["wake_at"],
        end_user=m["end_user"])


def run_event(run_id: str, attempt: int, status: str, flow_id: str, error: Any,
              now: float) -> tuple[Any, ...]:
    """An ``events`` row (journal column order) for a run that ended."""
    event_id = hashlib.sha256(f"run:{run_id}:{attempt}:{status}".encode()).hexdigest()[:32]
    data = {"run_id": run_id, "flow": flow_id, "status": status, "attempt": attempt}
    if error:
        data["error"] = error
    return (event_id, f"run.{status}", to_json(data), run_id, "run", now)


@dataclass(slots=True)
class ActiveRun:
    """A run an engine is executing (or starting)."""

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
    #: the end user it acts for (its calls use their connections only), or None
    end_user: str | None = None

    def row(self, owner: str | None, lease_until: float | None, now: float) -> tuple[Any, ...]:
        """Its ``flow_runs`` row, in the journal's column order."""
        return (self.id, self.flow.id, self.flow.version, self.digest, self.status,
                self.trigger, to_json(self.input), to_json(self.output), to_json(self.error),
                self.parent_run_id, self.parent_step, self.idempotency_key, owner, lease_until,
                self.wake_at, self.attempt, self.created_at, now, self.finished_at,
                self.end_user)

    def record(self, now: float) -> RunRecord:
        return RunRecord(
            id=self.id, flow_id=self.flow.id, flow_version=self.flow.version,
            status=self.status, trigger=self.trigger, input=self.input, output=self.output,
            error=self.error, parent_run_id=self.parent_run_id, attempt=self.attempt,
            created_at=self.created_at, updated_at=now, finished_at=self.finished_at,
            wake_at=self.wake_at, end_user=self.end_user)
