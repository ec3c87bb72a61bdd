"""Group commit of delivery attempt results: the worker queues each attempt's outcome
and goes on sending; whatever queued while one transaction committed goes into the next."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import sqlite3
from typing import Any

from sqlalchemy import bindparam, insert, update

from patchwire.errors import StoreError
from patchwire.store import Store
from patchwire.store.core import SQLITE_BUSY_TIMEOUT_MS
from patchwire.webhooks._delivery_tables import ATTEMPTS, DELIVERIES, SUBS

__all__ = ["ATTEMPT_COLUMNS", "UPDATE_FIELDS", "ResultWriter"]

UPDATE_FIELDS = ("status", "tries", "attempts", "next_attempt_at", "last_status_code",
                  "last_error", "last_latency_ms", "updated_at", "delivered_at")
ATTEMPT_COLUMNS = ("id", "delivery_id", "subscription_id", "attempt", "outcome",
                    "status_code", "latency_ms", "error", "started_at")
#: SQLite binds at most 32,766 parameters a statement
_SQLITE_MAX_PARAMS = 30_000


@functools.lru_cache(maxsize=64)
def _sqlite_update_sql(rows: int) -> str:
    # UPDATE ... FROM (VALUES ...) (SQLite 3.33+): a whole batch in one statement; VALUES
    # columns are column1, column2... (column1 is the id)
    one = "(" + ", ".join("?" * (len(UPDATE_FIELDS) + 1)) + ")"
    sets = ", ".join(f"{f} = v.column{i + 2}" for i, f in enumerate(UPDATE_FIELDS))
    return (f"UPDATE webhook_deliveries SET {sets} FROM (VALUES "  # noqa: S608
            + ", ".join([one] * rows) + ") AS v WHERE webhook_deliveries.id = v.column1")


@functools.lru_cache(maxsize=64)
def _sqlite_insert_attempts_sql(rows: int) -> str:
    one = "(" + ", ".join("?" * len(ATTEMPT_COLUMNS)) + ")"
    return (f"INSERT INTO webhook_attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES "  # noqa: S608
            + ", ".join([one] * rows))


class ResultWriter:
    """Group commit of attempt results: whatever queued while the previous transaction
    committed goes into the next one. Futures resolve in order.

    On a SQLite file the batch is written in a worker thread through a plain connection,
    many rows per statement: through aiosqlite, SQLAlchemy's per-row parameter processing
    and the driver's row-by-row binding keep taking the GIL from the event loop, which
    measured as a third of the delivery rate lost (the call log does the same, see
    ``Store.record_calls``). PostgreSQL (asyncpg, no thread) goes through SQLAlchemy.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._deliveries: list[tuple[Any, ...]] = []
        self._attempts: list[tuple[Any, ...]] = []
        self._subs: list[tuple[str, dict[str, Any]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        database = store.engine.url.database or ""
        self._sqlite_path = (database if store.dialect == "sqlite"
                             and database not in ("", ":memory:")
                             and not database.startswith("file:") else None)
        self._db: sqlite3.Connection | None = None

    @property
    def backlog(self) -> int:
        return len(self._attempts)

    def enqueue(self, delivery: tuple[Any, ...], attempt: tuple[Any, ...],
                sub: tuple[str, dict[str, Any]] | None) -> asyncio.Future[None]:
        """``delivery``: the id then the values of ``UPDATE_FIELDS``; ``attempt``: the
        values of ``ATTEMPT_COLUMNS``."""
        self._deliveries.append(delivery)
        self._attempts.append(attempt)
        if sub is not None:
            self._subs.append(sub)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return fut

    async def _run(self) -> None:
        while self._waiters:
            deliveries, self._deliveries = self._deliveries, []
            attempts, self._attempts = self._attempts, []
            subs, self._subs = self._subs, []
            waiters, self._waiters = self._waiters, []
            try:
                if self._sqlite_path is not None:
                    await asyncio.to_thread(self._commit_sqlite, deliveries, attempts, subs)
                else:
                    await self._commit(deliveries, attempts, subs)
            except BaseException as exc:
                for w in waiters:
                    if not w.done():
                        w.set_exception(exc if isinstance(exc, Exception)
                                        else StoreError("the result writer was cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    _UPDATE = (update(DELIVERIES).where(DELIVERIES.c.id == bindparam("b_id")).values(
        **{f: bindparam(f"b_{f}") for f in UPDATE_FIELDS}))

    async def _commit(self, deliveries: list[tuple[Any, ...]], attempts: list[tuple[Any, ...]],
                      subs: list[tuple[str, dict[str, Any]]]) -> None:
        names = ("b_id", *(f"b_{f}" for f in UPDATE_FIELDS))
        with self._store._errors(f"record {len(attempts)} webhook delivery attempts"):
            async with self._store.engine.begin() as conn:
                await conn.execute(self._UPDATE, [dict(zip(names, d, strict=True))
                                                  for d in deliveries])
                await conn.execute(insert(ATTEMPTS), [dict(zip(ATTEMPT_COLUMNS, a,
                                                                strict=True))
                                                       for a in attempts])
                for sub_id, values in subs:
                    await conn.execute(update(SUBS).where(SUBS.c.id == sub_id).values(
                        **values))

    def _commit_sqlite(self, deliveries: list[tuple[Any, ...]],
                       attempts: list[tuple[Any, ...]],
                       subs: list[tuple[str, dict[str, Any]]]) -> None:
        assert self._sqlite_path is not None
        if self._db is None:
            self._db = sqlite3.connect(self._sqlite_path, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA synchronous=NORMAL")
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for rows, sql in ((deliveries, _sqlite_update_sql),
                                  (attempts, _sqlite_insert_attempts_sql)):
                    step = max(1, _SQLITE_MAX_PARAMS // len(rows[0])) if rows else 1
                    for i in range(0, len(rows), step):
                        chunk = rows[i:i + step]
                        db.execute(sql(len(chunk)), tuple(itertools.chain.from_iterable(chunk)))
                for sub_id, values in subs:
                    cols = ", ".join(f"{k} = ?" for k in values)
                    db.execute(f"UPDATE webhook_subscriptions SET {cols} WHERE id = ?",  # noqa: S608
                               (*values.values(), sub_id))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record webhook delivery attempts: {exc}") from exc

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 30)
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)
