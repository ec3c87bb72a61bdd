"""The inbox: verified inbound events, committed before they are acknowledged, then
processed asynchronously, each exactly once.

Writing (:class:`InboxWriter`, ``_inbox_writer.py``): an event is committed, by group
commit, before the receiver acknowledges it; duplicates (the same event id, or the same
signed body within the replay window) are acknowledged and dropped.

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
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
from sqlalchemy import RowMapping, Table, Text, func, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncConnection

from patchwire.errors import (
    FlowInputError,
    UnknownFlow,
    UnknownInboxEvent,
)
from patchwire.expressions import Expression, ExpressionError, compile_expression, truthy
from patchwire.ports import HasSettings, HasStore
from patchwire.store import (
    Store,
    WebhookInboxRow,
    WebhookRejectionRow,
    dead_local_owners,
    new_owner_id,
)

from ._inbox_writer import INBOX_COLUMNS, InboxWriter

if TYPE_CHECKING:
    from patchwire.flows import Engine
    from patchwire.flows.spec import FlowSpec

__all__ = [
    "EventHandler",
    "Inbox",
    "InboxEvent",
    "InboxHost",
    "InboxRecord",
    "RejectionRecord",
    "UnknownInboxEvent",
]

log = logging.getLogger("patchwire.webhooks")

_INBOX = cast(Table, WebhookInboxRow.__table__)
_REJECTIONS = cast(Table, WebhookRejectionRow.__table__)

STATUSES = ("pending", "processed", "failed")


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


class InboxHost(HasStore, HasSettings, Protocol):
    """What the inbox is given: the store its events live in, the settings (replay window,
    body timeout) — the runtime or the facade."""


class Inbox:
    """The inbox of one process: the writer the receiver uses, the processor, queries.

    ``engine`` starts the matching flows (not started, it records their runs as queued
    for a worker). ``start()`` runs the processor; an inbox that is not started still
    writes events (for another process to process) and answers queries.
    """

    def __init__(
        self, host: InboxHost, engine: Engine | None = None, *,
        owner: str | None = None, lease: float = 30.0, batch_size: int = 256,
        concurrency: int = 64, max_attempts: int = 8, backoff: float = 1.0,
        max_backoff: float = 3600.0, poll_interval: float = 1.0,
        gather_delay: float = 0.05, clock: Callable[[], float] = time.time,
        replay_window: float | None = None,
    ) -> None:
        self._host = host
        self.settings = host.settings
        self.replay_window = (host.settings.webhook_replay_window if replay_window is None
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

    @property
    def store(self) -> Store:
        return self._host.store

    # -- handlers and lifecycle -----------------------------------------------------------

    def add_handler(self, handler: EventHandler) -> None:
        """Run ``handler`` for every event (after its flows started). A handler that raises
        makes the event retried later — with every handler again: make handlers
        idempotent."""
        self._handlers.append(handler)

    @property
    def writer(self) -> InboxWriter:
        if self._writer is None:
            self._writer = InboxWriter(self.store, on_commit=self._kick.set,
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
        async with self.store.engine.connect() as conn:
            return int(await conn.scalar(stmt) or 0)

    async def _release_dead_owners(self) -> None:
        """Events claimed by processors on this host whose process is gone are due at
        once (no need to wait for their leases to expire after a crash)."""
        async with self.store.engine.connect() as conn:
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
        if self.store.dialect == "postgresql":
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
        async with self.store.engine.connect() as conn:
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
        store = self.store
        with store._errors("list webhook events"):
            async with store.engine.connect() as conn:
                rows = (await conn.execute(stmt.limit(max(0, limit)))).all()
        return [_inbox_record(r._mapping) for r in rows]

    async def get_event(self, event_id: str) -> InboxRecord:
        store = self.store
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
        async with self.store.engine.connect() as conn:
            return int(await conn.scalar(stmt) or 0)

    async def replay(self, event_id: str) -> InboxRecord:
        """Process an event again (a failed one, or a processed one on purpose): it is due
        at once, with fresh attempts. Its flows start again only if their first run is
        gone: the idempotency key is the same."""
        store = self.store
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
        store = self.store
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
