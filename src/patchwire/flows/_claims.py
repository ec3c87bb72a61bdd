"""Claiming runs: which runs are due, taking them under a lease, renewing the leases of the
runs an engine holds and letting go of the runs of engines that died.

The engine that runs a run holds a lease on it (``owner``, ``lease_until``), renewed while
it runs. Runs that wait (a timer, an approval, a sub-flow) are released and claimed again
when due; runs of an engine that died are claimed once its lease expires, or at once when
it ran on this host and its process is gone.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select, update

from patchwire.flows._runs import RUNS, STEPS
from patchwire.ports import HasStore
from patchwire.store import Store, dead_local_owners

__all__ = ["Claims"]


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i: i + size] for i in range(0, len(items), size)]


class Claims:
    """The leases of one engine (``owner``) on the runs of a store.

    ``only``: the ids of the runs this engine may claim (with their sub-flow runs), read
    at every claim so the caller can add to it; ``None``, any due run.
    """

    def __init__(self, host: HasStore, owner: str, lease: float, *,
                 only: Collection[str] | None = None) -> None:
        self._host = host
        self.owner = owner
        self.lease = lease
        self.only = only

    @property
    def store(self) -> Store:
        return self._host.store

    def due(self, now: float) -> Any:
        """The runs an engine may take now."""
        due = (
            # queued by an engine that runs them elsewhere (Temporal) when it has an owner
            ((RUNS.c.status == "queued") & RUNS.c.owner.is_(None))
            | ((RUNS.c.status == "waiting") & (RUNS.c.wake_at <= now))
            | ((RUNS.c.status == "running") & (RUNS.c.owner.is_(None)))
            | ((RUNS.c.status == "running") & (RUNS.c.lease_until < now)))
        if self.only is not None:
            ours = sorted(self.only)
            due = due & (RUNS.c.id.in_(ours) | RUNS.c.parent_run_id.in_(ours))
        return due

    async def heartbeat(self, now: float, holding: Collection[str]) -> list[str]:
        """Renew the leases of this engine's running runs; of ``holding`` (the runs it
        executes), the ids cancelled meanwhile."""
        async with self.store.engine.begin() as conn:
            await conn.execute(update(RUNS).where(
                RUNS.c.owner == self.owner, RUNS.c.status == "running").values(
                lease_until=now + self.lease))
            if not holding:
                return []
            cancelled = (await conn.execute(select(RUNS.c.id).where(
                RUNS.c.id.in_(list(holding)), RUNS.c.status == "cancelled"))).all()
        return [run_id for (run_id,) in cancelled]

    async def claim(self, now: float, room: int, *, full: Collection[str] = ()) -> list[Any]:
        """Take up to ``room`` due runs (none of the flows in ``full``, at their
        concurrency cap), oldest first: their rows (mappings)."""
        due = self.due(now)
        pick = select(RUNS.c.id).where(due)
        if full:
            pick = pick.where(RUNS.c.flow_id.not_in(list(full)))
        pick = pick.order_by(RUNS.c.created_at).limit(room)
        # One statement, so SQLite takes the write lock first (a read-then-write
        # transaction could not upgrade past another writer); ``due`` is repeated outside
        # the subquery so that PostgreSQL re-checks it on a row another engine just took.
        async with self.store.engine.begin() as conn:
            rows = (await conn.execute(
                update(RUNS).where(RUNS.c.id.in_(pick.scalar_subquery()), due).values(
                    status="running", owner=self.owner, lease_until=now + self.lease,
                    wake_at=None, updated_at=now).returning(*RUNS.c))).all()
        return [row._mapping for row in rows]

    async def checkpoints(self, run_ids: list[str]) -> dict[str, list[Any]]:
        """The checkpoints ``(key, status, output)`` of many runs, by run id, in one query
        per 500 (after a restart that is hundreds of runs; one query each took about a
        second per thousand)."""
        by_run: dict[str, list[Any]] = {run_id: [] for run_id in run_ids}
        async with self.store.engine.connect() as conn:
            for chunk in _chunks(run_ids, 500):
                for run_id, key, status, output in (await conn.execute(
                        select(STEPS.c.run_id, STEPS.c.key, STEPS.c.status,
                               STEPS.c.output).where(STEPS.c.run_id.in_(chunk)))).all():
                    by_run[run_id].append((key, status, output))
        return by_run

    async def release_dead_owners(self) -> None:
        """Runs held by engines on this host whose process is gone are free at once (no
        need to wait for their leases to expire after a crash)."""
        async with self.store.engine.connect() as conn:
            owners = [r[0] for r in (await conn.execute(
                select(RUNS.c.owner).where(RUNS.c.status == "running",
                                           RUNS.c.owner.is_not(None)).distinct())).all()]
        dead = dead_local_owners(owners, me=self.owner)
        if dead:
            async with self.store.engine.begin() as conn:
                await conn.execute(update(RUNS).where(
                    RUNS.c.owner.in_(dead), RUNS.c.status == "running").values(
                    owner=None, lease_until=None))

    async def release(self) -> None:
        """Drop this engine's leases: its running runs resume elsewhere."""
        async with self.store.engine.begin() as conn:
            await conn.execute(update(RUNS).where(
                RUNS.c.owner == self.owner, RUNS.c.status == "running").values(
                owner=None, lease_until=None))
