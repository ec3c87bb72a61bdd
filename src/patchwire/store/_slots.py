"""Concurrency slots in the store: a connector's ``concurrency: N`` cap held by every
process sharing the store (``http/_client.py`` takes one per attempt when
``shared_concurrency`` is on).

The invariant: however many processes share the store, at most N calls of a connector
hold a slot at once. The connector has rows 0..N-1 in ``concurrency_slots``; a call takes
the lowest row below N that is free (no holder, or its expiry passed) by writing its
holder id and expiry into it, and clears the row when its attempt ends. Taking is one
statement that finds and writes the row, so two takers never get the same one:

- SQLite: the UPDATE runs in a BEGIN IMMEDIATE transaction, which holds the database's
  write lock (waiting up to busy_timeout for it) before anything is read.
- PostgreSQL: the inner SELECT locks the row it picks ``FOR UPDATE SKIP LOCKED``: a
  concurrent taker skips a row being taken instead of queueing behind it, and a row that
  another taker committed meanwhile is re-checked against the WHERE clause (READ
  COMMITTED) and passed over. The statement runs in autocommit: one round trip.

Why an expiry: a process that dies mid-call never clears its row. The holder sets the
expiry to its attempt's longest life (the connector's total timeout) plus a margin, so
the row frees itself soon after the call could have ended anyway. Times are wall-clock
seconds supplied by the caller, as for the rate-limit leases (``_leases.py``): processes
on several hosts must keep their clocks within that margin of each other.

Rows are created on a process's first take for a (connector, cap) pair (an idempotent
insert), so a raised cap gains its new rows and a lowered one leaves the rows above it
unused.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool

from patchwire.store._group_commit import FileConnection, immediate, sqlite_file
from patchwire.store.core import _SQLITE_IMMEDIATE, Store

__all__ = ["SlotRequest", "SlotTable", "release_async", "release_sqlite", "take_async",
           "take_sqlite"]

_ENSURE = ("INSERT INTO concurrency_slots (connector, slot, holder, expires_at) "
           "VALUES (:connector, :slot, NULL, 0) ON CONFLICT (connector, slot) DO NOTHING")
# {lock} is empty on SQLite (its write lock is already held) and FOR UPDATE SKIP LOCKED on
# PostgreSQL; the free condition is repeated outside so the row written is still free
_TAKE = ("UPDATE concurrency_slots SET holder = :holder, expires_at = :expires_at "
         "WHERE connector = :connector AND (holder IS NULL OR expires_at <= :now) "
         "AND slot = (SELECT slot FROM concurrency_slots "
         "WHERE connector = :connector AND slot < :cap "
         "AND (holder IS NULL OR expires_at <= :now) ORDER BY slot LIMIT 1{lock}) "
         "RETURNING slot")
_TAKE_SQLITE = _TAKE.format(lock="")
_TAKE_POSTGRES = _TAKE.format(lock=" FOR UPDATE SKIP LOCKED")
# the holder check: a slot that expired and was taken over is not the old holder's to clear
_RELEASE = ("UPDATE concurrency_slots SET holder = NULL, expires_at = 0 "
            "WHERE connector = :connector AND slot = :slot AND holder = :holder")


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """Take one of ``cap`` slots of ``connector`` for ``holder`` until ``expires_at``."""

    connector: str
    cap: int
    holder: str
    now: float
    expires_at: float
    #: create the rows first (this process's first take for this connector and cap)
    ensure: bool = False

    def params(self) -> dict[str, object]:
        return {"connector": self.connector, "cap": self.cap, "holder": self.holder,
                "now": self.now, "expires_at": self.expires_at}

    def rows(self) -> list[dict[str, object]]:
        return [{"connector": self.connector, "slot": i} for i in range(self.cap)]


def _release_params(connector: str, slot: int, holder: str) -> dict[str, object]:
    return {"connector": connector, "slot": slot, "holder": holder}


# -- SQLite: a plain connection in a worker thread ---------------------------------------

def take_sqlite(db: sqlite3.Connection, req: SlotRequest) -> int | None:
    """Run in a worker thread; the slot taken, or None when all ``cap`` are held."""
    with immediate(db):
        if req.ensure:
            db.executemany(_ENSURE, req.rows())
        rows = db.execute(_TAKE_SQLITE, req.params()).fetchall()
    return int(rows[0][0]) if rows else None


def release_sqlite(db: sqlite3.Connection, connector: str, slot: int, holder: str) -> None:
    # one statement in autocommit mode: its own transaction
    db.execute(_RELEASE, _release_params(connector, slot, holder))


# -- PostgreSQL (and in-memory SQLite): the async engine ---------------------------------

async def take_async(conn: AsyncConnection, req: SlotRequest) -> int | None:
    """On PostgreSQL in autocommit (each statement commits); on SQLite inside the caller's
    IMMEDIATE transaction."""
    if req.ensure:
        await conn.execute(text(_ENSURE), req.rows())
    sql = _TAKE_POSTGRES if conn.dialect.name == "postgresql" else _TAKE_SQLITE
    slot = (await conn.execute(text(sql), req.params())).scalar()
    return None if slot is None else int(slot)


async def release_async(conn: AsyncConnection, connector: str, slot: int, holder: str
                        ) -> None:
    await conn.execute(text(_RELEASE), _release_params(connector, slot, holder))


class SlotTable:
    """One process's access to the slots of ``store`` (``http._guard.SlotSource``).

    Close it before the store: on a SQLite file it keeps its own connection, used in worker
    threads one operation at a time, so waiting for the write lock never blocks the loop.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        path = sqlite_file(store.engine)
        self._file = (None if path is None else FileConnection(
            path, what="use the concurrency slots", closed="the concurrency slots are closed"))
        self._engine: AsyncEngine = store.engine
        #: how many slot statements may run at once (None: no bound)
        self._parallel: asyncio.Semaphore | None = None
        if store.dialect == "postgresql":
            # one statement a take: BEGIN and COMMIT would be two more round trips
            self._engine = store.engine.execution_options(isolation_level="AUTOCOMMIT")
            pool = store.engine.pool
            if isinstance(pool, QueuePool):
                # Beyond the pool's size every statement would open a connection and close
                # it again (measured: 8 at once took 6x as long as 4), which costs more
                # than queueing here; one connection stays for the rest of the store.
                self._parallel = asyncio.Semaphore(max(1, pool.size() - 1))
        #: (connector, cap) pairs whose rows this process made sure exist
        self._ensured: set[tuple[str, int]] = set()

    async def take_slot(self, connector: str, cap: int, holder: str, now: float,
                        expires_at: float) -> int | None:
        """Take a free (or expired) slot below ``cap`` for ``holder`` until the wall time
        ``expires_at``; returns its index, or None when all are held."""
        key = (connector, cap)
        req = SlotRequest(connector, cap, holder, now, expires_at,
                          ensure=key not in self._ensured)
        with self._store._errors(f"take a concurrency slot of {connector}"):
            if self._file is not None:
                slot = await self._file.run(lambda db: take_sqlite(db, req))
            else:
                async with self._turn_for_statement(), self._engine.connect() as conn:
                    if conn.dialect.name == "postgresql":
                        slot = await take_async(conn, req)
                    else:
                        conn = await conn.execution_options(**{_SQLITE_IMMEDIATE: True})
                        async with conn.begin():
                            slot = await take_async(conn, req)
        self._ensured.add(key)
        return slot

    async def release_slot(self, connector: str, slot: int, holder: str) -> None:
        """Free ``slot`` if ``holder`` still holds it."""
        with self._store._errors(f"release a concurrency slot of {connector}"):
            if self._file is not None:
                await self._file.run(lambda db: release_sqlite(db, connector, slot, holder))
                return
            async with self._turn_for_statement(), self._engine.begin() as conn:
                await release_async(conn, connector, slot, holder)

    async def close(self) -> None:
        """Close the SQLite connection (after an operation in a worker thread ends).
        Idempotent."""
        if self._file is not None:
            await self._file.close()

    def _turn_for_statement(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._parallel if self._parallel is not None else contextlib.nullcontext()
