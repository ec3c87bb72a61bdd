"""The group-commit writer and the store file's own connections, on both backends where
the behaviour is the backend's (SQLite file, PostgreSQL) and on the SQLite file where it
is the file connection's (batching while a commit runs, lock polling, threads)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Dialect

from patchwire.errors import StoreError
from patchwire.store import (
    FileConnection,
    GroupCommitWriter,
    Statement,
    Store,
    immediate,
    no_results,
    sqlite_file,
    values_sql,
)

#: the bound on every wait in this module (a hang fails instead of blocking the run)
WAIT_S = 20.0

Item = tuple[str, int]


def inserts(batch: list[Item], dialect: Dialect) -> Iterator[Statement]:
    """One multi-row insert of the batch; the values it returns are those of new rows
    (an item whose id is taken is a duplicate)."""
    values = values_sql(len(batch), 2, dialect.paramstyle)
    yield Statement(f"INSERT INTO gc_items (id, value) VALUES {values} "
                    "ON CONFLICT (id) DO NOTHING RETURNING value",
                    [v for item in batch for v in item], returns=True)


def inserted(batch: list[Item], returned: list[list[Any]]) -> list[bool]:
    new = {row[0] for rows in returned for row in rows}
    return [item[1] in new for item in batch]


async def _rows(store: Store) -> dict[str, int]:
    async with store.engine.connect() as conn:
        result = await conn.execute(text("SELECT id, value FROM gc_items"))
        return {r[0]: r[1] for r in result.all()}


@pytest.fixture
async def items_store(store: Store) -> Store:
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE TABLE gc_items (id VARCHAR(64) PRIMARY KEY, value INTEGER NOT NULL)")
    return store


@pytest.fixture
async def file_store(tmp_path: Any) -> AsyncIterator[Store]:
    """A SQLite file store with the test table (the file connection's own behaviour)."""
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}") as store:
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql(
                "CREATE TABLE gc_items (id VARCHAR(64) PRIMARY KEY, value INTEGER NOT NULL)")
        yield store


def writer(store: Store, **kwargs: Any) -> GroupCommitWriter[Item, bool]:
    return GroupCommitWriter(store, inserts, inserted, what="write test items",
                             name="the test writer", **kwargs)


# -- both backends -------------------------------------------------------------------------


async def test_items_submitted_together_share_one_transaction_and_each_gets_its_answer(
        items_store: Store) -> None:
    w = writer(items_store)
    try:
        async def submitter(n: int) -> bool:
            return await w.submit((f"item-{n % 150}", n))

        # 200 submitters before the writer runs: one batch; ids 150..199 repeat 0..49
        answers = await asyncio.wait_for(
            asyncio.gather(*(submitter(n) for n in range(200))), WAIT_S)
    finally:
        await w.close()
    assert answers == [True] * 150 + [False] * 50
    assert (w.commits, w.items) == (1, 200)
    rows = await _rows(items_store)
    assert rows == {f"item-{n}": n for n in range(150)}


async def test_a_failing_batch_fails_only_its_own_futures_and_writes_none_of_its_rows(
        items_store: Store) -> None:
    def poisoned(batch: list[Item], dialect: Dialect) -> Iterator[Statement]:
        yield from inserts(batch, dialect)
        if any(value < 0 for _, value in batch):
            # a later statement of the same transaction fails: the insert above is undone
            yield Statement("INSERT INTO gc_items (id, value) VALUES "
                            f"{values_sql(1, 2, dialect.paramstyle)}", ("poison", None))

    w = GroupCommitWriter(items_store, poisoned, inserted, what="write test items",
                          name="the test writer")
    try:
        first = [w.submit((f"a{n}", n)) for n in range(3)]
        await asyncio.wait_for(asyncio.gather(*first), WAIT_S)
        second = [w.submit(("b0", 0)), w.submit(("b1", -1))]
        outcomes = await asyncio.wait_for(
            asyncio.gather(*second, return_exceptions=True), WAIT_S)
        third = [w.submit((f"c{n}", n)) for n in range(2)]
        assert await asyncio.wait_for(asyncio.gather(*third), WAIT_S) == [True, True]
    finally:
        await w.close()
    assert all(isinstance(o, StoreError) for o in outcomes)
    assert all(str(o).startswith("cannot write test items") for o in outcomes)
    assert set(await _rows(items_store)) == {"a0", "a1", "a2", "c0", "c1"}
    assert w.commits == 2


async def test_close_commits_what_is_queued_then_refuses_new_items(
        items_store: Store) -> None:
    w = GroupCommitWriter(items_store, inserts, no_results, what="write test items",
                          name="the test writer")
    queued = [w.submit((f"q{n}", n)) for n in range(50)]
    await asyncio.wait_for(w.close(), WAIT_S)
    assert all(f.done() and f.result() is None for f in queued)
    assert len(await _rows(items_store)) == 50
    with pytest.raises(StoreError, match="the test writer is closed"):
        w.submit(("late", 1))


async def test_commit_writes_a_batch_at_once_outside_the_queue(items_store: Store) -> None:
    w = writer(items_store)
    try:
        assert await w.commit([("x", 1), ("x", 2), ("y", 3)]) == [True, False, True]
        assert await w.commit([]) == []
    finally:
        await w.close()
    assert await _rows(items_store) == {"x": 1, "y": 3}


# -- SQLite file: batching, threads, the write lock ----------------------------------------


@pytest.mark.parametrize("in_thread", [True, False], ids=["thread", "loop"])
async def test_many_concurrent_submitters_lose_no_write(file_store: Store,
                                                       in_thread: bool) -> None:
    w = writer(file_store, in_thread=in_thread, lock_poll_cap=None if in_thread else 0.05)
    rng = random.Random(15)

    async def submitter(k: int) -> list[bool]:
        answers = []
        for n in range(20):
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)  # interleave submitters differently each round
            answers.append(await w.submit((f"s{k}-{n}", n)))
        return answers

    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(submitter(k) for k in range(50))), WAIT_S)
    finally:
        await w.close()
    assert all(all(r) for r in results)
    assert len(await _rows(file_store)) == 1000
    assert w.items == 1000
    assert w.commits < 1000  # batched


async def test_what_queues_while_a_batch_commits_goes_into_the_next_batch(
        file_store: Store) -> None:
    entered, release = threading.Event(), threading.Event()
    batches: list[int] = []

    def held(batch: list[Item], dialect: Dialect) -> Iterator[Statement]:
        batches.append(len(batch))
        if len(batches) == 1:  # the first transaction waits (in its worker thread)
            entered.set()
            assert release.wait(WAIT_S)
        yield from inserts(batch, dialect)

    w = GroupCommitWriter(file_store, held, inserted, what="write test items",
                          name="the test writer")
    try:
        first = w.submit(("first", 0))
        assert await asyncio.to_thread(entered.wait, WAIT_S)
        later = [w.submit((f"later{n}", n)) for n in range(30)]
        assert w.backlog == 30
        assert not first.done()
        release.set()
        assert await asyncio.wait_for(asyncio.gather(first, *later), WAIT_S) == [True] * 31
    finally:
        release.set()
        await w.close()
    assert batches == [1, 30]
    assert w.commits == 2


@pytest.mark.parametrize("in_thread", [True, False], ids=["thread", "loop"])
async def test_a_polling_writer_waits_out_a_write_lock_held_by_its_own_loop(
        file_store: Store, in_thread: bool) -> None:
    """The holder is a transaction of the same event loop: a writer blocking the loop
    (or a thread) on the lock would never let it commit."""
    tries = 0
    retried = asyncio.Event()
    loop = asyncio.get_running_loop()

    def counted(batch: list[Item], dialect: Dialect) -> Iterator[Statement]:
        nonlocal tries
        tries += 1
        if tries == 3:
            loop.call_soon_threadsafe(retried.set)
        yield from inserts(batch, dialect)

    w = GroupCommitWriter(file_store, counted, inserted, what="write test items",
                          name="the test writer", in_thread=in_thread, lock_poll_cap=0.002)
    try:
        async with file_store.engine.connect() as conn:
            conn = await conn.execution_options(patchwire_sqlite_immediate=True)
            async with conn.begin():
                await conn.exec_driver_sql("INSERT INTO gc_items VALUES ('holder', 0)")
                pending = w.submit(("waiter", 1))
                await asyncio.wait_for(retried.wait(), WAIT_S)
                assert not pending.done()
        assert await asyncio.wait_for(pending, WAIT_S) is True
    finally:
        await w.close()
    assert await _rows(file_store) == {"holder": 0, "waiter": 1}


async def test_a_cancelled_writer_fails_its_batch_instead_of_leaving_it_waiting(
        file_store: Store) -> None:
    entered, release = threading.Event(), threading.Event()

    def held(batch: list[Item], dialect: Dialect) -> Iterator[Statement]:
        entered.set()
        assert release.wait(WAIT_S)
        yield from inserts(batch, dialect)

    w = GroupCommitWriter(file_store, held, inserted, what="write test items",
                          name="the test writer")
    waiting = w.submit(("w", 1))
    try:
        assert await asyncio.to_thread(entered.wait, WAIT_S)
        # the writer's task, as a loop shutting down would cancel it
        task = next(t for t in asyncio.all_tasks()
                    if getattr(t.get_coro(), "__qualname__", "") == "GroupCommitWriter._run")
        task.cancel()
        release.set()
        with pytest.raises(StoreError, match="the test writer was cancelled"):
            await asyncio.wait_for(waiting, WAIT_S)
    finally:
        release.set()
        await w.close()


# -- the file connection -------------------------------------------------------------------


def _file(store: Store, **kwargs: Any) -> FileConnection:
    path = sqlite_file(store.engine)
    assert path is not None
    return FileConnection(path, what="use the test file", closed="the test file is closed",
                          **kwargs)


async def test_a_file_connection_runs_one_operation_at_a_time(file_store: Store) -> None:
    conn = _file(file_store)
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow(db: sqlite3.Connection) -> None:
        order.append("slow started")
        entered.set()
        assert release.wait(WAIT_S)
        order.append("slow ended")

    def quick(db: sqlite3.Connection) -> int:
        order.append("quick")
        return int(db.execute("SELECT 41 + 1").fetchone()[0])

    try:
        first = asyncio.ensure_future(conn.run(slow))
        assert await asyncio.to_thread(entered.wait, WAIT_S)
        second = asyncio.ensure_future(conn.run(quick))
        await asyncio.sleep(0)
        assert not second.done()
        release.set()
        assert await asyncio.wait_for(second, WAIT_S) == 42
        await first
    finally:
        release.set()
        await conn.close()
    assert order == ["slow started", "slow ended", "quick"]


async def test_a_cancelled_operation_keeps_the_connection_until_its_thread_ends(
        file_store: Store) -> None:
    conn = _file(file_store)
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow(db: sqlite3.Connection) -> None:
        entered.set()
        assert release.wait(WAIT_S)
        order.append("slow ended")

    try:
        first = asyncio.ensure_future(conn.run(slow))
        assert await asyncio.to_thread(entered.wait, WAIT_S)
        first.cancel()
        second = asyncio.ensure_future(conn.run(lambda db: order.append("next")))
        await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(second, WAIT_S)
        with pytest.raises(asyncio.CancelledError):
            await first
    finally:
        release.set()
        await conn.close()
    assert order == ["slow ended", "next"]


async def test_a_sqlite_error_is_a_store_error_naming_the_operation(file_store: Store) -> None:
    conn = _file(file_store)
    try:
        with pytest.raises(StoreError, match=r"^cannot use the test file: no such table"):
            await conn.run(lambda db: db.execute("SELECT * FROM missing"))
    finally:
        await conn.close()
    with pytest.raises(StoreError, match=r"^the test file is closed$"):
        await conn.run(lambda db: None)


async def test_immediate_commits_the_block_or_rolls_all_of_it_back(file_store: Store) -> None:
    conn = _file(file_store)

    def fails(db: sqlite3.Connection) -> None:
        with immediate(db):
            db.execute("INSERT INTO gc_items VALUES ('undone', 1)")
            db.execute("INSERT INTO gc_items VALUES ('undone', 2)")  # primary key

    def works(db: sqlite3.Connection) -> None:
        with immediate(db):
            db.execute("INSERT INTO gc_items VALUES ('kept', 1)")

    try:
        with pytest.raises(StoreError, match="UNIQUE"):
            await conn.run(fails)
        await conn.run(works)
        assert not await conn.run(lambda db: db.in_transaction)
    finally:
        await conn.close()
    assert await _rows(file_store) == {"kept": 1}


def test_only_a_sqlite_file_gets_a_file_connection() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    def path(url: str) -> str | None:
        engine = create_async_engine(url)
        try:
            return sqlite_file(engine)
        finally:
            engine.sync_engine.dispose()

    assert path("sqlite+aiosqlite:////tmp/x/patchwire.db") == "/tmp/x/patchwire.db"
    assert path("sqlite+aiosqlite:///:memory:") is None
    assert path("sqlite+aiosqlite:///file:shared.db?uri=true") is None
    assert path("postgresql+asyncpg://u:p@127.0.0.1/db") is None


def test_values_sql_numbers_the_placeholders_of_every_row_for_each_driver() -> None:
    assert values_sql(2, 3, "qmark") == "(?, ?, ?), (?, ?, ?)"
    assert values_sql(2, 3, "numeric_dollar") == "($1, $2, $3), ($4, $5, $6)"
    assert values_sql(1, 1, "qmark") == "(?)"


async def test_a_writer_on_the_loop_thread_must_poll_for_the_write_lock(
        file_store: Store) -> None:
    with pytest.raises(ValueError, match="must poll"):
        writer(file_store, in_thread=False)
