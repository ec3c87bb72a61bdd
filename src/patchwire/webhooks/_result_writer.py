"""Group commit of delivery attempt results: the worker queues each attempt's outcome
and goes on sending; whatever queued while one transaction committed goes into the next
(the store's :class:`~patchwire.store.GroupCommitWriter`).

On a SQLite file the batch is written in a worker thread through the writer's own
connection, many rows per statement: through aiosqlite, SQLAlchemy's per-row parameter
processing and the driver's row-by-row binding keep taking the GIL from the event loop,
which measured as a third of the delivery rate lost. On PostgreSQL one ``executemany``
a table (asyncpg pipelines it).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Dialect

from patchwire.store import GroupCommitWriter, Statement, Store, no_results, values_sql

__all__ = ["ATTEMPT_COLUMNS", "UPDATE_FIELDS", "ResultWriter"]

UPDATE_FIELDS = ("status", "tries", "attempts", "next_attempt_at", "last_status_code",
                  "last_error", "last_latency_ms", "updated_at", "delivered_at")
ATTEMPT_COLUMNS = ("id", "delivery_id", "subscription_id", "attempt", "outcome",
                    "status_code", "latency_ms", "error", "started_at")
#: SQLite binds at most 32,766 parameters a statement
_SQLITE_MAX_PARAMS = 30_000
#: how long closing waits for queued results to be committed
_CLOSE_WAIT_S = 30.0

#: one attempt's result: the delivery's id and new ``UPDATE_FIELDS`` values, the attempt's
#: ``ATTEMPT_COLUMNS`` values, and the subscription's changed columns (if any)
_Result = tuple[tuple[Any, ...], tuple[Any, ...], tuple[str, dict[str, Any]] | None]


@functools.lru_cache(maxsize=64)
def _sqlite_update_sql(rows: int) -> str:
    # UPDATE ... FROM (VALUES ...) (SQLite 3.33+): a whole batch in one statement; VALUES
    # columns are column1, column2... (column1 is the id)
    sets = ", ".join(f"{f} = v.column{i + 2}" for i, f in enumerate(UPDATE_FIELDS))
    return (f"UPDATE webhook_deliveries SET {sets} FROM (VALUES "  # noqa: S608
            + values_sql(rows, len(UPDATE_FIELDS) + 1, "qmark")
            + ") AS v WHERE webhook_deliveries.id = v.column1")


@functools.lru_cache(maxsize=64)
def _sqlite_insert_attempts_sql(rows: int) -> str:
    return (f"INSERT INTO webhook_attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES "  # noqa: S608
            + values_sql(rows, len(ATTEMPT_COLUMNS), "qmark"))


def _dollars(n: int, start: int = 1) -> list[str]:
    return [f"${i}" for i in range(start, start + n)]


#: one row a statement, executemany (PostgreSQL)
_UPDATE_ONE = ("UPDATE webhook_deliveries SET "  # noqa: S608
               + ", ".join(f"{f} = {m}" for f, m in zip(
                   UPDATE_FIELDS, _dollars(len(UPDATE_FIELDS), 2), strict=True))
               + " WHERE id = $1")
_INSERT_ONE = (f"INSERT INTO webhook_attempts ({', '.join(ATTEMPT_COLUMNS)}) "  # noqa: S608
               f"VALUES ({', '.join(_dollars(len(ATTEMPT_COLUMNS)))})")


def _statements(batch: list[_Result], dialect: Dialect) -> Iterator[Statement]:
    deliveries = [delivery for delivery, _, _ in batch]
    attempts = [attempt for _, attempt, _ in batch]
    if dialect.name == "sqlite":
        for rows, sql in ((deliveries, _sqlite_update_sql),
                          (attempts, _sqlite_insert_attempts_sql)):
            step = max(1, _SQLITE_MAX_PARAMS // len(rows[0]))
            for i in range(0, len(rows), step):
                chunk = rows[i:i + step]
                yield Statement(sql(len(chunk)), tuple(itertools.chain.from_iterable(chunk)))
    else:
        yield Statement(_UPDATE_ONE, deliveries, many=True)
        yield Statement(_INSERT_ONE, attempts, many=True)
    qmark = dialect.paramstyle == "qmark"
    for _, _, sub in batch:
        if sub is None:
            continue
        sub_id, values = sub
        marks = ["?"] * (len(values) + 1) if qmark else _dollars(len(values) + 1)
        sets = ", ".join(f"{k} = {m}" for k, m in zip(values, marks, strict=False))
        yield Statement(f"UPDATE webhook_subscriptions SET {sets} "  # noqa: S608
                        f"WHERE id = {marks[-1]}", (*values.values(), sub_id))


class ResultWriter:
    """Queues attempt results; each future is done once its result is committed.
    Futures resolve in order."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._writer = self._new_writer()

    def _new_writer(self) -> GroupCommitWriter[_Result, None]:
        return GroupCommitWriter(self._store, _statements, no_results,
                                 what="record webhook delivery attempts",
                                 name="the result writer")

    @property
    def backlog(self) -> int:
        return self._writer.backlog

    def enqueue(self, delivery: tuple[Any, ...], attempt: tuple[Any, ...],
                sub: tuple[str, dict[str, Any]] | None) -> asyncio.Future[None]:
        """``delivery``: the id then the values of ``UPDATE_FIELDS``; ``attempt``: the
        values of ``ATTEMPT_COLUMNS``; ``sub``: a subscription's id and changed columns."""
        return self._writer.submit((delivery, attempt, sub))

    async def close(self) -> None:
        """Commit what is queued (waiting up to 30 s) and close the connection. The
        worker goes on with a fresh writer: a test's ``run_once`` closes after each pass,
        and a stopped worker can start again."""
        writer, self._writer = self._writer, self._new_writer()
        await writer.close(_CLOSE_WAIT_S)
