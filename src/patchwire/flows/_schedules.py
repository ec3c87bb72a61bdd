"""Schedules: the runs of a flow's cron triggers, started once per slot across restarts
and processes (the slot is the run's idempotency key; the last slot fired is stored)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from patchwire.flows._runs import SCHEDULES
from patchwire.flows.spec import FlowSpec
from patchwire.ports import HasStore
from patchwire.store import Store

__all__ = ["Schedules", "StartRun"]

#: how an engine starts a schedule's run: (flow id, input, trigger, idempotency key)
StartRun = Callable[..., Awaitable[str]]


class Schedules:
    def __init__(self, host: HasStore) -> None:
        self._host = host

    @property
    def store(self) -> Store:
        return self._host.store

    async def fire(self, flows: list[FlowSpec], now: float, *, poll_interval: float,
                   start_run: StartRun) -> list[str]:
        """Start the runs of schedule slots that are due (``start_run(flow_id, input,
        trigger=, idempotency_key=)``: the engine's); the ids of the runs started."""
        from croniter import croniter

        started: list[str] = []
        for flow in flows:
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
                    fire = [slots[-1]] if now - slots[-1] < poll_interval * 2 else []
                elif schedule.missed == "once":
                    fire = [slots[-1]]
                else:
                    fire = slots
                for slot in fire:
                    started.append(await start_run(
                        flow.id, dict(schedule.input), trigger="schedule",
                        idempotency_key=f"schedule:{key}:{int(slot)}"))
                await self._set_last_slot(key, slots[-1])
        return started

    async def _last_slot(self, key: str, now: float) -> float:
        async with self.store.engine.connect() as conn:
            last: Any = await conn.scalar(select(SCHEDULES.c.last_slot).where(
                SCHEDULES.c.key == key))
        if last is None:
            await self._set_last_slot(key, now)  # a new schedule starts from now
            return now
        return float(last)

    async def _set_last_slot(self, key: str, slot: float) -> None:
        store = self.store
        dialect = postgresql if store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(SCHEDULES).values(key=key, last_slot=slot)
        stmt = stmt.on_conflict_do_update(index_elements=["key"],
                                          set_={"last_slot": stmt.excluded.last_slot})
        async with store.engine.begin() as conn:
            await conn.execute(stmt)
