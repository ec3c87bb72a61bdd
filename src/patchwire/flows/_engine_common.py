"""What the embedded and the Temporal engine do alike, written once: functions over the
``Engine`` protocol that both engines call. Composed, not inherited: neither engine
subclasses the other, and this module does not import the optional Temporal SDK."""

from __future__ import annotations

import contextlib
from typing import Any

from patchwire.errors import RunStateError
from patchwire.flows._protocol import Engine
from patchwire.flows._retention import purge_runs
from patchwire.flows._runs import ActiveRun
from patchwire.flows._schedules import Schedules

__all__ = ["fire_due_schedules", "purge_finished_runs", "retry_failed_runs", "start_child_run"]


async def start_child_run(engine: Engine, run: ActiveRun, key: str, flow_id: str,
                          input: Any) -> dict[str, Any]:
    """Start the sub-flow run of ``run``'s step ``key`` (once: the parent run and step are
    its idempotency key, so a replayed step finds the same child), acting for the same
    end user as its parent; its state as the interpreter reads it."""
    child_id = await engine.start_run(flow_id, input, trigger="flow",
                                      idempotency_key=f"sub:{run.id}:{key}",
                                      parent_run_id=run.id, parent_step=key,
                                      end_user=run.end_user)
    child = await engine.get_run(child_id)
    return {"status": child.status, "output": child.output, "error": child.error,
            "id": child.id}


async def fire_due_schedules(engine: Engine, schedules: Schedules, now: float) -> list[str]:
    """Start the runs of the engine's schedule slots that are due, once per slot across
    restarts and processes (the slot is the run's idempotency key)."""
    return await schedules.fire(engine.flows(), now, poll_interval=engine.poll_interval,
                                start_run=engine.start_run)


async def retry_failed_runs(engine: Engine, *, flow_id: str | None, limit: int) -> list[str]:
    """Retry every dead letter (failed run), optionally of one flow; the ids retried (a
    run another process retried meanwhile is left out)."""
    failed = await engine.list_runs(flow_id=flow_id, status="failed", limit=limit)
    done = []
    for record in failed:
        with contextlib.suppress(RunStateError):
            await engine.retry(record.id)
            done.append(record.id)
    return done


async def purge_finished_runs(engine: Engine, *, older_than: float | None,
                              now: float | None) -> int:
    """Delete finished runs past their flow's retention (or older than ``older_than``
    seconds for every flow), with their steps. How many runs were deleted."""
    now = engine.clock() if now is None else now
    rules: list[tuple[str | None, float]] = []
    if older_than is not None:
        rules.append((None, older_than))
    else:
        rules.extend((f.id, f.retention) for f in engine.flows() if f.retention is not None)
    return await purge_runs(engine.runs.store, rules, now)
