"""Retention: finished runs deleted, with their steps, once past their flow's retention."""

from __future__ import annotations

from sqlalchemy import delete, select

from patchwire.flows._runs import FINISHED, RUNS, STEPS
from patchwire.store import Store

__all__ = ["purge_runs"]


async def purge_runs(store: Store, rules: list[tuple[str | None, float]], now: float) -> int:
    """Delete the finished runs of each rule ``(flow id or None for every flow, age in
    seconds)`` that finished longer than its age ago; how many runs were deleted."""
    deleted = 0
    async with store.engine.begin() as conn:
        for flow_id, age in rules:
            cond = [RUNS.c.status.in_(FINISHED), RUNS.c.finished_at < now - age]
            if flow_id is not None:
                cond.append(RUNS.c.flow_id == flow_id)
            ids = select(RUNS.c.id).where(*cond).scalar_subquery()
            await conn.execute(delete(STEPS).where(STEPS.c.run_id.in_(ids)))
            result = await conn.execute(delete(RUNS).where(*cond))
            deleted += result.rowcount or 0
    return deleted
