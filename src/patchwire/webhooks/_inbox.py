"""The inbox: verified inbound events, committed before they are acknowledged, then
processed asynchronously, each exactly once.

Writing (:class:`InboxWriter`). The receiver acknowledges an event only once its row is
committed, so a sender never sees a 2xx for an event a crash could lose. One transaction
per request would make the database the receiver's ceiling, so rows are queued and whatever
queued while the previous transaction committed goes into the next one (group commit, as
the run journal does): each request awaits its own commit, hundreds share one fsync. The
insert is ``ON CONFLICT DO NOTHING RETURNING id``: a row that did not
come back was a duplicate (the sender's retry of an event already here, possibly in the
same batch), acknowledged and dropped. On SQLite the batch commits with ``synchronous=FULL``
(an acknowledged event survives power loss, not just a crash; one fsync per batch makes
that cheap) in a worker thread, so the loop goes on parsing and verifying requests during
the fsync (measured: p99 20 ms instead of 25-50 ms on the loop thread at ~3,300 events/s);
the write lock is polled rather than waited for, as the run journal does.

Replays under a new id. Where the scheme signs no event id (GitHub's and Shopify's delivery
ids are plain headers), a row also carries ``content_digest``, the SHA-256 of the signed
content, unique per source as well: the same insert finds a captured body sent again under
a fresh delivery id a duplicate (the ``DO NOTHING`` has no conflict target, so either key
counts). A digest is remembered for ``replay_window`` seconds (the setting
``webhook_replay_window``, a week by default: longer than any vendor retries): before
inserting rows with digests, the batch clears those digests on rows older than that (one
indexed statement, only for such batches), after which the same body is a new event again.

Processing (:class:`Inbox`). A processor claims due pending events (``owner``,
``lease_until``: a lease renewed while it works, like flow runs), and for each:

1. starts every flow whose ``trigger.webhook`` entry names the event's source and whose
   ``filter`` (JSONata over the payload) is true, with the entry's ``input`` mapping (or
   the payload) as input, under the idempotency key ``hook:<inbox id>:<flow id>``;
2. runs every registered handler (``Inbox.add_handler``);

then marks the event processed — guarded by its ownership, so a processor whose lease
expired cannot mark an event another one has claimed since. A crash between the effects
and the mark makes the event due again (at once if the dead processor ran on this host,
else when its lease expires): flow starts are idempotent by their key, so the flows start
exactly once; handlers run again (at least once: they must be idempotent, as upserts are).
A failure is retried with capped exponential backoff; after ``max_attempts`` the event is
marked failed (``patchwire webhooks replay`` puts it back).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import RowMapping, Table, Text, func, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncConnection

from patchwire.errors import (
    FlowInputError,
    StoreError,
    UnknownFlow,
    UnknownInboxEvent,
)
from patchwire.expressions import Expression, ExpressionError, compile_expression, truthy
from patchwire.store import WebhookInboxRow, WebhookRejectionRow, dead_local_owners, new_owner_id

if TYPE_CHECKING:
    from patchwire._patchwire import Patchwire
    from patchwire.flows import Engine
    from patchwire.flows.spec import FlowSpec
    from patchwire.store import Store

__all__ = [
    "INBOX_COLUMNS",
    "REJECTION_COLUMNS",
    "EventHandler",
    "Inbox",
    "InboxEvent",
    "InboxRecord",
    "InboxWriter",
    "RejectionRecord",
    "UnknownInboxEvent",
]

log = logging.getLogger("patchwire.webhooks")

_INBOX = cast(Table, WebhookInboxRow.__table__)
_REJECTIONS = cast(Table, WebhookRejectionRow.__table__)

#: the columns a receiver writes, in the order of the tuples given to InboxWriter.submit
INBOX_COLUMNS = ("id", "source", "event_id", "type", "payload", "headers", "received_at",
                 "status", "attempts", "next_attempt_at", "owner", "lease_until",
                 "content_digest")
_RECEIVED_AT = INBOX_COLUMNS.index("received_at")
_DIGEST = INBOX_COLUMNS.index("content_digest")
REJECTION_COLUMNS = ("id", "source", "reason", "status", "detail", "headers", "body_excerpt",
                     "body_bytes", "received_at")
STATUSES = ("pending", "processed", "failed")
_SQLITE_LOCK_WAIT_S = 30.0
#: rows a statement (SQLite binds at most 32,766 parameters)
_ROWS_PER_STATEMENT = 1000
#: how long a body is remembered where no signed id tells replays apart (the setting
#: ``webhook_replay_window`` overrides it)
DEFAULT_REPLAY_WINDOW_S = 7 * 86_400.0


@dataclass(frozen=True)
class InboxEvent:
    """An inbound event as handlers see it."""

    id: str
    source: str
    event_id: str | None
    type: str | None
    payload: Any
    received_at: float


EventHandler = Callable[[InboxEvent], Awaitable[None]]



def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True)
class InboxRecord:
    """An inbox row as listings show it."""

    id: str
    source: str
    event_id: str | None
    type: str | None
    status: str
    attempts: int
    received_at: float
    next_attempt_at: float
    processed_at: float | None
    error: str | None
    payload: Any = None
    headers: Mapping[str, Any] | None = None

    def to_dict(self, *, payload: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id, "source": self.source, "event_id": self.event_id,
            "type": self.type, "status": self.status, "attempts": self.attempts,
            "received_at": _iso(self.received_at),
            "next_attempt_at": _iso(self.next_attempt_at) if self.status == "pending" else None,
            "processed_at": _iso(self.processed_at), "error": self.error,
        }
        if payload:
            d["payload"] = self.payload
            d["headers"] = dict(self.headers or {})
        return d


@dataclass(frozen=True)
class RejectionRecord:
    id: str
    source: str
    reason: str
    status: int
    detail: str | None
    headers: Mapping[str, Any]
    body_excerpt: str | None
    body_bytes: int
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "reason": self.reason,
                "status": self.status, "detail": self.detail, "headers": dict(self.headers),
                "body_excerpt": self.body_excerpt, "body_bytes": self.body_bytes,
                "received_at": _iso(self.received_at)}


def _inbox_record(m: RowMapping, *, full: bool = False) -> InboxRecord:
    return InboxRecord(
        id=m["id"], source=m["source"], event_id=m["event_id"], type=m["type"],
        status=m["status"], attempts=int(m["attempts"]), received_at=float(m["received_at"]),
        next_attempt_at=float(m["next_attempt_at"]),
        processed_at=None if m["processed_at"] is None else float(m["processed_at"]),
        error=m["error"], payload=m["payload"] if full else None,
        headers=m["headers"] if full else None)


# -- writing: group commit ------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _insert_sql(kind: str, rows: int, style: str) -> str:
    columns = INBOX_COLUMNS if kind == "inbox" else REJECTION_COLUMNS
    width = len(columns)

    def mark(i: int) -> str:
        return "?" if style == "qmark" else f"${i + 1}"

    values = ", ".join("(" + ", ".join(mark(r * width + c) for c in range(width)) + ")"
                       for r in range(rows))
    table = "webhook_inbox" if kind == "inbox" else "webhook_rejections"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"  # noqa: S608
    if kind == "inbox":
        # no conflict target: a row is a duplicate by (source, event_id) or by
        # (content_digest, source), whichever it meets
        sql += " ON CONFLICT DO NOTHING RETURNING id"
    return sql


_RELEASE = ("UPDATE webhook_inbox SET content_digest = NULL"
            " WHERE content_digest IS NOT NULL AND ")


@functools.lru_cache(maxsize=64)
def _release_sql(digests: int, style: str) -> str:
    """Clear the given digests on rows received before a cutoff (the last parameter): a
    body seen longer ago than the replay window counts as new again. ``IS NOT NULL`` lets
    SQLite use the partial unique index."""
    marks = ", ".join("?" if style == "qmark" else f"${i + 1}" for i in range(digests))
    cutoff = "?" if style == "qmark" else f"${digests + 1}"
    return _RELEASE + f"content_digest IN ({marks}) AND received_at < {cutoff}"


def _expired_digests(events: list[tuple[Any, ...]],
                     window: float) -> list[tuple[tuple[str, ...], float]]:
    """The batch's digests in statement-sized chunks, each with the cutoff before which a
    row's digest is forgotten (the earliest of the batch's times, less the window)."""
    rows = [row for row in events if len(row) > _DIGEST and row[_DIGEST] is not None]
    if not rows:
        return []
    cutoff = min(float(row[_RECEIVED_AT]) for row in rows) - window
    digests = sorted({row[_DIGEST] for row in rows})
    return [(tuple(digests[i: i + _ROWS_PER_STATEMENT]), cutoff)
            for i in range(0, len(digests), _ROWS_PER_STATEMENT)]


class InboxWriter:
    """Queues inbox and rejection rows; each caller's future is done once its row is
    committed (True: a new event; False: a duplicate that was dropped)."""

    def __init__(self, store: Store, *, on_commit: Callable[[], None] | None = None,
                 replay_window: float = DEFAULT_REPLAY_WINDOW_S) -> None:
        self._store = store
        self._on_commit = on_commit
        #: seconds a content digest makes a body a duplicate (see the module docstring)
        self.replay_window = replay_window
        self._events: list[tuple[tuple[Any, ...], asyncio.Future[bool]]] = []
        self._rejections: list[tuple[tuple[Any, ...], asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._db: sqlite3.Connection | None = None
        self._closed = False
        url = store.engine.url
        self._sqlite_path = (url.database if store.dialect == "sqlite"
                             and url.database not in (None, "", ":memory:") else None)
        #: commits so far and the rows they held (the benchmark reports rows per commit)
        self.commits = 0
        self.rows = 0

    def submit(self, row: tuple[Any, ...]) -> asyncio.Future[bool]:
        """Queue one inbox row (a tuple in INBOX_COLUMNS order)."""
        return self._queue(self._events, row)

    def reject(self, row: tuple[Any, ...]) -> asyncio.Future[bool]:
        """Queue one rejection row (a tuple in REJECTION_COLUMNS order)."""
        return self._queue(self._rejections, row)

    def _queue(self, into: list[tuple[tuple[Any, ...], asyncio.Future[bool]]],
               row: tuple[Any, ...]) -> asyncio.Future[bool]:
        if self._closed:
            raise StoreError("the webhook inbox is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        into.append((row, fut))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._writer())
        self._wake.set()
        return fut

    async def _writer(self) -> None:
        while self._events or self._rejections:
            await self._wake.wait()
            self._wake.clear()
            events, self._events = self._events, []
            rejections, self._rejections = self._rejections, []
            try:
                inserted = await self._commit([r for r, _ in events], [r for r, _ in rejections])
            except Exception as exc:  # every waiter learns its row is not committed
                error = exc if isinstance(exc, StoreError) else StoreError(
                    f"cannot write webhook events: {exc}")
                for _, fut in itertools.chain(events, rejections):
                    if not fut.done():
                        fut.set_exception(error)
            else:
                self.commits += 1
                self.rows += len(events) + len(rejections)
                for row, fut in events:
                    if not fut.done():
                        fut.set_result(row[0] in inserted)
                for _, fut in rejections:
                    if not fut.done():
                        fut.set_result(True)
                if inserted and self._on_commit is not None:
                    self._on_commit()
            if self._events or self._rejections:
                self._wake.set()

    async def _commit(self, events: list[tuple[Any, ...]],
                      rejections: list[tuple[Any, ...]]) -> set[str]:
        if self._sqlite_path is not None:
            delay, deadline = 0.0005, time.monotonic() + _SQLITE_LOCK_WAIT_S
            while (inserted := await asyncio.to_thread(
                    self._commit_sqlite, events, rejections)) is None:
                if time.monotonic() > deadline:
                    raise StoreError("cannot write webhook events: the database stayed "
                                     f"locked for {_SQLITE_LOCK_WAIT_S:.0f} s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.002)  # acknowledgements wait on this
            return inserted
        style = "qmark" if self._store.engine.dialect.paramstyle == "qmark" else "dollar"
        found: set[str] = set()
        with self._store._errors("write webhook events"):
            async with self._store.engine.begin() as conn:
                for digests, cutoff in _expired_digests(events, self.replay_window):
                    await conn.exec_driver_sql(_release_sql(len(digests), style),
                                               (*digests, cutoff))
                for kind, rows in (("inbox", events), ("rejections", rejections)):
                    for i in range(0, len(rows), _ROWS_PER_STATEMENT):
                        chunk = rows[i: i + _ROWS_PER_STATEMENT]
                        result = await conn.exec_driver_sql(
                            _insert_sql(kind, len(chunk), style),
                            tuple(itertools.chain.from_iterable(chunk)))
                        if kind == "inbox":
                            found.update(r[0] for r in result.fetchall())
        return found

    def _commit_sqlite(self, events: list[tuple[Any, ...]],
                       rejections: list[tuple[Any, ...]]) -> set[str] | None:
        """Write the batch; None (nothing written) while another connection holds the
        write lock."""
        assert self._sqlite_path is not None
        if self._db is None:
            self._db = sqlite3.connect(self._sqlite_path, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=0")
            # FULL: the WAL is synced at every commit, so an acknowledged event survives
            # power loss too (NORMAL only survives a process crash)
            self._db.execute("PRAGMA synchronous=FULL")
        db = self._db
        inserted: set[str] = set()
        try:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    return None
                raise
            try:
                for digests, cutoff in _expired_digests(events, self.replay_window):
                    db.execute(_release_sql(len(digests), "qmark"), (*digests, cutoff))
                for kind, rows in (("inbox", events), ("rejections", rejections)):
                    for i in range(0, len(rows), _ROWS_PER_STATEMENT):
                        chunk = rows[i: i + _ROWS_PER_STATEMENT]
                        cursor = db.execute(_insert_sql(kind, len(chunk), "qmark"),
                                            tuple(itertools.chain.from_iterable(chunk)))
                        if kind == "inbox":
                            inserted.update(r[0] for r in cursor.fetchall())
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write webhook events: {exc}") from exc
        return inserted

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 10)
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)


# -- processing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    """One flow's webhook trigger entry, compiled."""

    flow_id: str
    filter: Expression | None
    input: Expression | None


@dataclass(frozen=True, slots=True)
class _Claimed:
    """An event this processor claimed."""

    id: str
    source: str
    event_id: str | None
    type: str | None
    payload: Any
    headers: dict[str, Any]
    received_at: float
    attempts: int


class _Permanent(Exception):
    """A failure retrying cannot fix (the flow's input schema rejects the event...)."""


class Inbox:
    """The inbox of one process: the writer the receiver uses, the processor, queries.

    ``engine`` starts the matching flows (not started, it records their runs as queued
    for a worker). ``start()`` runs the processor; an inbox that is not started still
    writes events (for another process to process) and answers queries.
    """

    def __init__(
        self, pw: Patchwire, engine: Engine | None = None, *,
        owner: str | None = None, lease: float = 30.0, batch_size: int = 256,
        concurrency: int = 64, max_attempts: int = 8, backoff: float = 1.0,
        max_backoff: float = 3600.0, poll_interval: float = 1.0,
        gather_delay: float = 0.05, clock: Callable[[], float] = time.time,
        replay_window: float | None = None,
    ) -> None:
        self.pw = pw
        self.replay_window = (pw.settings.webhook_replay_window if replay_window is None
                              else replay_window)
        self.engine = engine
        self.owner = owner or new_owner_id()
        self.lease = lease
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval
        self.gather_delay = gather_delay
        self.clock = clock
        self._handlers: list[EventHandler] = []
        self._writer: InboxWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        #: set after every pass of the processor (wait_idle waits on it)
        self._passed = asyncio.Event()
        self._stopping = False
        self._routes: tuple[tuple[int, ...], dict[str, list[_Route]]] | None = None
        #: events this process received and owns from their insert on, handed over in
        #: memory once committed (see :meth:`submit`), and how many are on their way
        self._local: collections.deque[_Claimed] = collections.deque()
        self._local_pending = 0
        self.local_limit = 4 * batch_size
        self._heartbeat: asyncio.Task[None] | None = None
        self._store_pass = float("-inf")
        #: events this processor marked processed (tests and the benchmark read it)
        self.processed = 0

    # -- handlers and lifecycle -----------------------------------------------------------

    def add_handler(self, handler: EventHandler) -> None:
        """Run ``handler`` for every event (after its flows started). A handler that raises
        makes the event retried later — with every handler again: make handlers
        idempotent."""
        self._handlers.append(handler)

    @property
    def writer(self) -> InboxWriter:
        if self._writer is None:
            self._writer = InboxWriter(self.pw.store, on_commit=self._kick.set,
                                       replay_window=self.replay_window)
        return self._writer

    async def ingest(self, row: tuple[Any, ...]) -> bool:
        """Commit one inbox row (INBOX_COLUMNS order; its first ten columns are enough, the
        others are None);
        False when it was a duplicate."""
        if len(row) < len(INBOX_COLUMNS):
            row = (*row, *(None,) * (len(INBOX_COLUMNS) - len(row)))
        return await self.writer.submit(row)

    def submit(self, event: InboxEvent, payload: str | None, headers: dict[str, Any],
               headers_json: str, *, content_digest: str | None = None,
               ) -> asyncio.Future[bool]:
        """Queue a received event for the inbox (``payload`` and ``headers_json`` as stored:
        JSON text); the future says once it is committed whether it was new (neither its
        event id nor its ``content_digest``, where given, is already there).

        While this processor runs and is not behind, the row is inserted already claimed
        by it (``owner``, ``lease_until``) and the event is handed over in memory once
        committed: processing it then needs no claim transaction and no parsing. Should
        this process die first, the row is an ordinary claimed row: due again at once for
        the next processor on this host, or when its lease expires.
        """
        at = event.received_at
        local = (self._task is not None and not self._stopping
                 and len(self._local) + self._local_pending < self.local_limit)
        fut = self.writer.submit((event.id, event.source, event.event_id, event.type, payload,
                                  headers_json, at, "pending", 0, at,
                                  self.owner if local else None,
                                  self.clock() + self.lease if local else None,
                                  content_digest))
        if local:
            self._local_pending += 1

            def handover(done: asyncio.Future[bool]) -> None:
                self._local_pending -= 1
                if not done.cancelled() and done.exception() is None and done.result():
                    self._local.append(_Claimed(event.id, event.source, event.event_id,
                                                event.type, event.payload, headers, at, 0))
                    self._kick.set()

            fut.add_done_callback(handover)
        return fut

    async def start(self) -> Inbox:
        await self.pw.open()
        self._stopping = False
        await self._release_dead_owners()
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._loop())
        if self._heartbeat is None:
            self._heartbeat = loop.create_task(self._renew())
        return self

    async def stop(self) -> None:
        """Stop processing (events claimed and unfinished are released at once) and flush
        the writer."""
        self._stopping = True
        for task in (self._task, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._heartbeat = None
        self._local.clear()  # released below with the other events it owns
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        with contextlib.suppress(Exception):
            async with self._write() as conn:
                await conn.execute(update(_INBOX).where(
                    _INBOX.c.owner == self.owner, _INBOX.c.status == "pending").values(
                    owner=None, lease_until=None))

    async def __aenter__(self) -> Inbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def kick(self) -> None:
        """Look for due events now rather than at the next poll."""
        self._kick.set()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                claimed = await self.tick()
                if time.monotonic() - self._store_pass >= self.poll_interval:
                    # events handed over in memory must not starve the store's: retries
                    # coming due, events of processors that died
                    claimed += await self.tick(store=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook inbox processing failed; trying again")
                claimed = 0
            self._passed.set()
            if claimed >= self.batch_size:
                continue  # a full batch: there is probably more
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_interval)
                # Woken by new events: let a few more arrive first. Under a stream of
                # events this turns a claim transaction per ingest commit into one per
                # ``gather_delay``, which keeps the write lock free for the receiver
                # (SQLite has one writer) at the cost of that much processing latency.
                await asyncio.sleep(self.gather_delay)
            self._kick.clear()

    async def wait_idle(self, max_wait: float | None = None, *,
                        source: str | None = None) -> None:
        """Return once no pending event (of ``source``) is left that is due now, as this
        started processor sees after a pass. TimeoutError after ``max_wait`` seconds."""
        async with asyncio.timeout(max_wait):
            while True:
                self._passed.clear()
                if not await self._due_count(source):
                    return
                self._kick.set()
                await self._passed.wait()

    async def _due_count(self, source: str | None) -> int:
        stmt = select(func.count()).select_from(_INBOX).where(
            _INBOX.c.status == "pending", _INBOX.c.next_attempt_at <= self.clock())
        if source is not None:
            stmt = stmt.where(_INBOX.c.source == source)
        async with self.pw.store.engine.connect() as conn:
            return int(await conn.scalar(stmt) or 0)

    async def _release_dead_owners(self) -> None:
        """Events claimed by processors on this host whose process is gone are due at
        once (no need to wait for their leases to expire after a crash)."""
        async with self.pw.store.engine.connect() as conn:
            owners = [r[0] for r in (await conn.execute(
                select(_INBOX.c.owner).where(_INBOX.c.status == "pending",
                                             _INBOX.c.owner.is_not(None)).distinct())).all()]
        dead = dead_local_owners(owners, me=self.owner)
        if dead:
            async with self._write() as conn:
                await conn.execute(update(_INBOX).where(
                    _INBOX.c.owner.in_(dead), _INBOX.c.status == "pending").values(
                    owner=None, lease_until=None))

    # -- one pass -------------------------------------------------------------------------

    def _due(self, now: float) -> Any:
        return ((_INBOX.c.status == "pending") & (_INBOX.c.next_attempt_at <= now)
                & (_INBOX.c.lease_until.is_(None) | (_INBOX.c.lease_until < now)))

    async def _claim(self, now: float) -> list[_Claimed]:
        due = self._due(now)
        pick = (select(_INBOX.c.id).where(due).order_by(_INBOX.c.next_attempt_at)
                .limit(self.batch_size))
        if self.pw.store.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        # One statement; ``due`` is repeated outside the subquery so that PostgreSQL
        # re-checks it on a row another processor just took. The JSON columns come back as
        # text, parsed with orjson (the column type's json.loads costs several times more).
        async with self._write() as conn:
            rows = (await conn.execute(
                update(_INBOX).where(_INBOX.c.id.in_(pick.scalar_subquery()), due).values(
                    owner=self.owner, lease_until=now + self.lease).returning(
                    _INBOX.c.id, _INBOX.c.source, _INBOX.c.event_id, _INBOX.c.type,
                    sql_cast(_INBOX.c.payload, Text).label("payload"),
                    sql_cast(_INBOX.c.headers, Text).label("headers"), _INBOX.c.received_at,
                    _INBOX.c.attempts))).all()
        return [_Claimed(r[0], r[1], r[2], r[3], None if r[4] is None else orjson.loads(r[4]),
                         orjson.loads(r[5]) if r[5] else {}, float(r[6]), int(r[7]))
                for r in rows]

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN
        IMMEDIATE, waiting for it): a deferred one that read first fails at once with
        "database is locked" when the receiver committed in between."""
        async with self.pw.store.engine.connect() as conn:
            conn = await conn.execution_options(patchwire_sqlite_immediate=True)
            async with conn.begin():
                yield conn

    async def tick(self, *, store: bool = False) -> int:
        """Process a batch: the events handed over in memory, else (or with ``store``)
        due events claimed from the store; how many."""
        if self._local and not store:
            batch = [self._local.popleft()
                     for _ in range(min(self.batch_size, len(self._local)))]
        else:
            self._store_pass = time.monotonic()
            batch = await self._claim(self.clock())
        if not batch:
            return 0
        routes = self._routes_by_source()
        if not self._handlers:
            # an event no flow listens to and no handler wants is done as it is: no task
            idle = [(m.id, m.attempts, None) for m in batch if m.source not in routes]
            if idle:
                batch = [m for m in batch if m.source in routes]
                if not batch:
                    await self._settle(idle)
                    return len(idle)
        else:
            idle = []
        room = asyncio.Semaphore(self.concurrency)

        async def one(m: _Claimed) -> tuple[str, int, BaseException | None]:
            async with room:
                try:
                    await self._process(m)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    return m.id, m.attempts, exc
                return m.id, m.attempts, None

        await self._settle([*idle, *await asyncio.gather(*(one(m) for m in batch))])
        return len(idle) + len(batch)

    async def _renew(self) -> None:
        """Keep the lease of every event this processor owns (claimed, being processed or
        handed over and waiting) while it runs."""
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(Exception):  # the next renewal (or the lease) covers it
                async with self._write() as conn:
                    await conn.execute(update(_INBOX).where(
                        _INBOX.c.owner == self.owner, _INBOX.c.status == "pending").values(
                        lease_until=self.clock() + self.lease))

    async def _settle(self, outcomes: Sequence[tuple[str, int, BaseException | None]]) -> None:
        """Mark the batch's events processed, or due again later, or failed — only those
        this processor still owns — in one transaction."""
        now = self.clock()
        done = [event_id for event_id, _, error in outcomes if error is None]
        mine = (_INBOX.c.owner == self.owner) & (_INBOX.c.status == "pending")
        async with self._write() as conn:
            if done:
                result = await conn.execute(update(_INBOX).where(
                    _INBOX.c.id.in_(done), mine).values(
                    status="processed", processed_at=now, attempts=_INBOX.c.attempts + 1,
                    owner=None, lease_until=None, error=None))
                self.processed += result.rowcount
            for event_id, attempts, error in outcomes:
                if error is None:
                    continue
                tried = attempts + 1
                message = _describe(error)
                if tried >= self.max_attempts or isinstance(error, _Permanent):
                    values: dict[str, Any] = {"status": "failed", "processed_at": now}
                    log.warning("webhook event %s failed after %d attempt(s): %s",
                                event_id, tried, message)
                else:
                    delay = min(self.max_backoff, self.backoff * 2 ** (tried - 1))
                    values = {"next_attempt_at": now + delay * random.uniform(0.5, 1.0)}
                await conn.execute(update(_INBOX).where(_INBOX.c.id == event_id, mine).values(
                    attempts=tried, owner=None, lease_until=None, error=message, **values))

    # -- what processing an event does ------------------------------------------------------

    def _routes_by_source(self) -> dict[str, list[_Route]]:
        """Flows' webhook triggers by source, compiled; rebuilt when the flows change."""
        if self.engine is None:
            return {}
        flows: list[FlowSpec] = self.engine.flows()
        key = tuple(id(f) for f in flows)
        if self._routes is not None and self._routes[0] == key:
            return self._routes[1]
        routes: dict[str, list[_Route]] = {}
        for flow in flows:
            seen: set[str] = set()
            for trigger in flow.trigger.webhook:
                # one run per flow and event: the first entry naming a source counts
                if trigger.source in seen:
                    continue
                seen.add(trigger.source)
                routes.setdefault(trigger.source, []).append(_Route(
                    flow.id,
                    compile_expression(trigger.filter) if trigger.filter else None,
                    compile_expression(trigger.input) if trigger.input else None))
        self._routes = (key, routes)
        return routes

    def matching_flows(self, event: InboxEvent,
                       headers: Mapping[str, Any] | None = None) -> list[tuple[str, Any]]:
        """(flow id, run input) of every flow this event starts."""
        routes = self._routes_by_source().get(event.source)
        if not routes:
            return []
        bindings = {"event": {"id": event.id, "source": event.source,
                              "event_id": event.event_id, "type": event.type},
                    "headers": dict(headers or {})}
        starts: list[tuple[str, Any]] = []
        for route in routes:
            try:
                if route.filter is not None and not truthy(
                        route.filter.evaluate(event.payload, bindings)):
                    continue
                value = (event.payload if route.input is None
                         else route.input.evaluate(event.payload, bindings))
            except ExpressionError as exc:
                raise _Permanent(f"flow {route.flow_id}: {exc}") from exc
            starts.append((route.flow_id, value))
        return starts

    async def _process(self, m: _Claimed) -> None:
        event = InboxEvent(id=m.id, source=m.source, event_id=m.event_id, type=m.type,
                           payload=m.payload, received_at=m.received_at)
        for flow_id, value in self.matching_flows(event, m.headers):
            assert self.engine is not None
            try:
                await self.engine.start_run(flow_id, value, trigger="webhook",
                                            idempotency_key=f"hook:{event.id}:{flow_id}")
            except (FlowInputError, UnknownFlow) as exc:
                raise _Permanent(f"flow {flow_id}: {exc}") from exc
        for handler in self._handlers:
            await handler(event)

    # -- queries and replays --------------------------------------------------------------

    async def list_events(self, *, source: str | None = None, status: str | None = None,
                          limit: int = 100) -> list[InboxRecord]:
        """Inbox events, newest first."""
        stmt = select(_INBOX).order_by(_INBOX.c.received_at.desc(), _INBOX.c.id.desc())
        if source is not None:
            stmt = stmt.where(_INBOX.c.source == source)
        if status is not None:
            stmt = stmt.where(_INBOX.c.status == status)
        store = self.pw.store
        with store._errors("list webhook events"):
            async with store.engine.connect() as conn:
                rows = (await conn.execute(stmt.limit(max(0, limit)))).all()
        return [_inbox_record(r._mapping) for r in rows]

    async def get_event(self, event_id: str) -> InboxRecord:
        store = self.pw.store
        with store._errors("read a webhook event"):
            async with store.engine.connect() as conn:
                row = (await conn.execute(select(_INBOX).where(_INBOX.c.id == event_id))).first()
        if row is None:
            raise UnknownInboxEvent(f"no inbox event with id {event_id!r}")
        return _inbox_record(row._mapping, full=True)

    async def count(self, *, source: str | None = None, status: str | None = None) -> int:
        stmt = select(func.count()).select_from(_INBOX)
        if source is not None:
            stmt = stmt.where(_INBOX.c.source == source)
        if status is not None:
            stmt = stmt.where(_INBOX.c.status == status)
        async with self.pw.store.engine.connect() as conn:
            return int(await conn.scalar(stmt) or 0)

    async def replay(self, event_id: str) -> InboxRecord:
        """Process an event again (a failed one, or a processed one on purpose): it is due
        at once, with fresh attempts. Its flows start again only if their first run is
        gone: the idempotency key is the same."""
        store = self.pw.store
        with store._errors("replay a webhook event"):
            async with self._write() as conn:
                result = await conn.execute(update(_INBOX).where(
                    _INBOX.c.id == event_id, _INBOX.c.owner.is_(None)
                    | (_INBOX.c.status != "pending")).values(
                    status="pending", attempts=0, next_attempt_at=self.clock(), owner=None,
                    lease_until=None, processed_at=None, error=None))
        if not result.rowcount:
            await self.get_event(event_id)  # UnknownInboxEvent if there is none
        self._kick.set()
        return await self.get_event(event_id)

    async def list_rejections(self, *, source: str | None = None,
                              limit: int = 100) -> list[RejectionRecord]:
        """Rejected requests, newest first."""
        stmt = select(_REJECTIONS).order_by(_REJECTIONS.c.received_at.desc(),
                                            _REJECTIONS.c.id.desc())
        if source is not None:
            stmt = stmt.where(_REJECTIONS.c.source == source)
        store = self.pw.store
        with store._errors("list webhook rejections"):
            async with store.engine.connect() as conn:
                rows = (await conn.execute(stmt.limit(max(0, limit)))).all()
        return [RejectionRecord(**r._mapping) for r in rows]


def _describe(exc: BaseException) -> str:
    """What the inbox records of a failure: the error's class and message (Patchwire's
    errors never carry secret values)."""
    inner = exc.__cause__ if isinstance(exc, _Permanent) and exc.__cause__ is not None else exc
    text = str(exc)
    return (f"{type(inner).__name__}: {text}" if text else type(inner).__name__)[:2000]
