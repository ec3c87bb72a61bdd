"""Group commit, and the store file's own SQLite connections.

Every durable record written on a hot path (a run checkpoint, an inbound webhook event, a
delivery attempt, the call log) is written by a :class:`GroupCommitWriter`: callers queue
items and await a future, and whatever queued while the previous transaction committed
goes into the next one, so hundreds of callers share one transaction (one fsync) and
each still learns that its own item is durable before it goes on.

On a SQLite file a writer does not go through the store's engine: aiosqlite's thread
hand-overs and SQLAlchemy's per-row parameter processing keep taking the GIL from the
event loop, which measured as a third of the delivery rate lost and more than double
the call latency. It keeps a :class:`FileConnection` instead, a plain ``sqlite3``
connection of its own, and binds many rows per statement (one C call, the GIL released
while SQLite works). The rate-limit leases and the concurrency slots keep one too: a
transaction that waits for the write lock then waits in a worker thread, never on the
event loop. This is the only module that opens such connections.

On PostgreSQL (and an in-memory or URI SQLite database, which another connection could
not open) the same statements run through the store's engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from patchwire.errors import StoreError

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_LOCK_WAIT_S",
    "FileConnection",
    "GroupCommitWriter",
    "Statement",
    "immediate",
    "no_results",
    "sqlite_file",
    "values_sql",
]

#: SQLite waits this long for a competing writer instead of failing with "database is locked"
SQLITE_BUSY_TIMEOUT_MS = 5000
#: how long a writer that polls for the write lock (``lock_poll_cap``) keeps trying
SQLITE_LOCK_WAIT_S = 30.0
#: the first pause between two polls for the write lock (doubling up to the cap)
_FIRST_POLL_S = 0.0005

T = TypeVar("T")
R = TypeVar("R")


class StoreLike(Protocol):
    """What a writer needs of :class:`~patchwire.store.Store` (a protocol: ``core.py``
    imports this module)."""

    @property
    def engine(self) -> AsyncEngine: ...

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]: ...


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The file of a SQLite store that a plain connection can open: None on PostgreSQL,
    and for an in-memory or ``file:`` URI database (its engine is the only way in)."""
    database = engine.url.database or ""
    if (engine.dialect.name != "sqlite" or database in ("", ":memory:")
            or database.startswith("file:")):
        return None
    return database


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on a plain connection (autocommit mode): ``BEGIN IMMEDIATE``
    takes the write lock before anything is read (waiting up to the busy timeout), so a
    read-then-write cannot fail on a stale snapshot; committed when the block ends,
    rolled back on any exception, a failed COMMIT included."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class FileConnection:
    """A plain ``sqlite3`` connection to a store's file, kept by one writer and used by
    one operation at a time. Opened on first use, in autocommit mode (transactions are
    explicit: :func:`immediate`).

    ``busy_timeout_ms``: how long a statement waits for another connection's write lock
    (0: it fails at once, for a writer that polls without holding a thread).
    ``synchronous``: ``NORMAL`` survives a process crash (WAL); ``FULL`` syncs the WAL at
    every commit and also survives power loss. Every ``sqlite3`` error becomes a
    :class:`~patchwire.errors.StoreError` saying ``cannot {what}``.
    """

    def __init__(self, path: str, *, what: str, closed: str = "the store is closed",
                 busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
                 synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> None:
        self.path = path
        self._what = what
        self._closed_message = closed
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        self._turn = asyncio.Lock()
        self._closed = False

    def run_here(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the calling thread (the caller makes sure nothing else uses
        the connection meanwhile)."""
        if self._closed:
            raise StoreError(self._closed_message)
        try:
            if self._db is None:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                db.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
                db.execute(f"PRAGMA synchronous={self._synchronous}")
                self._db = db
            return work(self._db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot {self._what}: {exc}") from exc

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a worker thread, after the operations queued before it."""
        async with self._turn:
            if self._closed:
                raise StoreError(self._closed_message)
            done = asyncio.get_running_loop().run_in_executor(None, self.run_here, work)
            try:
                return await asyncio.shield(done)
            except asyncio.CancelledError:
                # the thread goes on using the connection: keep the turn until it is done
                await asyncio.wait([done])
                raise

    async def close(self) -> None:
        """Close the connection once the operation in a worker thread ends; later
        operations fail with the ``closed`` message. Idempotent."""
        self._closed = True
        async with self._turn:
            db, self._db = self._db, None
            if db is not None:
                # closing the last connection may checkpoint the WAL: disk work
                await asyncio.get_running_loop().run_in_executor(None, db.close)


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a batch: ``params`` is one row of parameters, or with ``many``
    a list of rows (executemany). With ``returns`` the rows it returns are kept."""

    sql: str
    params: Sequence[Any]
    many: bool = False
    returns: bool = False


#: what a writer writes: the statements of a batch in the store's dialect, made lazily
#: (on a SQLite file in the worker thread, inside the transaction)
Statements = Callable[[list[T], Dialect], Iterable[Statement]]
#: a writer's answer per item, from the rows its ``returns`` statements returned
Results = Callable[[list[T], list[list[Any]]], Sequence[R]]


def no_results(batch: Sequence[object], returned: object) -> list[None]:
    """``results`` of a writer whose callers only wait for the commit."""
    return [None] * len(batch)


class GroupCommitWriter(Generic[T, R]):
    """Queues items; :meth:`submit`'s future is done once the item is committed.

    Whatever queued while a batch committed goes into the next batch, one transaction,
    and batches commit in order (when a later item's future is done, so is an earlier
    one's). ``statements`` turns a batch into SQL; ``results`` turns what its
    ``returns`` statements returned into one answer per item, in order (it runs on the
    event loop once the batch committed). When a batch fails, every future of that batch
    fails with a :class:`~patchwire.errors.StoreError` (``cannot {what}: ...``) and the
    next batch goes on.

    On a SQLite file the batch runs on the writer's own :class:`FileConnection` in a
    worker thread (``in_thread``: the event loop goes on meanwhile), or on the loop
    thread where a commit is quicker than waiting for the GIL behind a busy loop. With
    ``lock_poll_cap`` the write lock is not waited for but polled, the loop free in
    between (its holder may be a transaction of this very loop), from 0.5 ms doubling up
    to that many seconds, for up to :data:`SQLITE_LOCK_WAIT_S`; a writer on the loop
    thread must poll. Elsewhere the statements run in one transaction of the store's
    engine.
    """

    def __init__(self, store: StoreLike, statements: Statements[T],
                 results: Results[T, R], *, what: str, name: str,
                 synchronous: Literal["NORMAL", "FULL"] = "NORMAL", in_thread: bool = True,
                 lock_poll_cap: float | None = None) -> None:
        if not in_thread and lock_poll_cap is None:
            # waiting for the write lock would block the loop, maybe behind its own holder
            raise ValueError("a group-commit writer on the loop thread must poll for the "
                             "write lock (give lock_poll_cap)")
        self._store = store
        self._statements = statements
        self._results = results
        self._what = what
        self._name = name
        self._in_thread = in_thread
        self._lock_poll_cap = lock_poll_cap
        path = sqlite_file(store.engine)
        self._file = None if path is None else FileConnection(
            path, what=what, closed=f"{name} is closed", synchronous=synchronous,
            busy_timeout_ms=0 if lock_poll_cap is not None else SQLITE_BUSY_TIMEOUT_MS)
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: transactions committed so far, and the items they held
        self.commits = 0
        self.items = 0

    @property
    def backlog(self) -> int:
        """Items queued and not yet in a transaction."""
        return len(self._items)

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue one item; StoreError once the writer is closed."""
        if self._closed:
            raise StoreError(f"{self._name} is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._items.append(item)
        self._futures.append(fut)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return fut

    async def _run(self) -> None:
        while self._items:
            batch, self._items = self._items, []
            futures, self._futures = self._futures, []
            try:
                results = await self.commit(batch)
            except BaseException as exc:
                error = (StoreError(f"{self._name} was cancelled")
                         if not isinstance(exc, Exception) else exc)
                for fut in futures:
                    if not fut.done():
                        fut.set_exception(error)
                if not isinstance(exc, Exception):
                    raise
                continue
            for fut, result in zip(futures, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    async def commit(self, batch: list[T]) -> Sequence[R]:
        """Write ``batch`` in one transaction now, outside the queue (for a caller that
        batches by itself); one answer per item."""
        if not batch:
            return []
        try:
            returned = await self._transaction(batch)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot {self._what}: {exc}") from exc
        self.commits += 1
        self.items += len(batch)
        return self._results(batch, returned)

    async def _transaction(self, batch: list[T]) -> list[list[Any]]:
        dialect = self._store.engine.dialect
        if self._file is None:
            statements = iter(self._statements(batch, dialect))
            first = next(statements, None)
            if first is None:
                return []
            returned: list[list[Any]] = []
            with self._store._errors(self._what):
                async with self._store.engine.begin() as conn:
                    for st in itertools.chain((first,), statements):
                        result = await conn.exec_driver_sql(
                            st.sql, list(st.params) if st.many else tuple(st.params))
                        if st.returns:
                            returned.append(list(result.fetchall()))
            return returned

        def work(db: sqlite3.Connection) -> list[list[Any]] | None:
            return _execute(db, self._statements(batch, dialect),
                            poll=self._lock_poll_cap is not None)

        file = self._file
        delay, deadline = _FIRST_POLL_S, time.monotonic() + SQLITE_LOCK_WAIT_S
        while True:
            done = await file.run(work) if self._in_thread else file.run_here(work)
            if done is not None:
                return done
            # only a polling writer (busy timeout 0) gives up on the lock
            assert self._lock_poll_cap is not None
            if time.monotonic() > deadline:
                raise StoreError(f"cannot {self._what}: the database stayed locked for "
                                 f"{SQLITE_LOCK_WAIT_S:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._lock_poll_cap)

    async def close(self, max_wait: float = 10.0) -> None:
        """Refuse new items, wait (up to ``max_wait`` seconds) for the queued ones to be
        committed, then close the connection. Idempotent."""
        self._closed = True
        if self._task is not None:
            # wait() neither cancels the task on time-out nor raises what ended it
            await asyncio.wait({self._task}, timeout=max_wait)
        if self._file is not None:
            await self._file.close()


def _execute(db: sqlite3.Connection, statements: Iterable[Statement], *,
             poll: bool) -> list[list[Any]] | None:
    """Run the statements in one transaction; None (nothing written) when ``poll`` and
    another connection holds the write lock."""
    it = iter(statements)
    first = next(it, None)
    if first is None:
        return []
    returned: list[list[Any]] = []
    try:
        with immediate(db):
            for st in itertools.chain((first,), it):
                cursor = (db.executemany(st.sql, st.params) if st.many
                          else db.execute(st.sql, st.params))
                if st.returns:
                    returned.append(cursor.fetchall())
    except sqlite3.OperationalError as exc:
        # BEGIN found the lock taken (busy timeout 0), or a statement did: either way
        # nothing is written (rolled back), so the batch can be tried again
        if poll and _locked(exc):
            return None
        raise
    return returned


def values_sql(rows: int, width: int, style: str) -> str:
    """The ``VALUES`` list of a multi-row statement: ``rows`` rows of ``width``
    placeholders, ``?`` (``style`` qmark, SQLite) or ``$1, $2, ...`` (asyncpg)."""
    if style == "qmark":
        one = "(" + ", ".join("?" * width) + ")"
        return ", ".join([one] * rows)
    return ", ".join("(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")"
                     for r in range(rows))
