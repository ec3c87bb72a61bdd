"""The sync engine: polls list actions into ``sync_records``, with change events.

One poll, for one (sync, connection)::

    claim the schedule slot (compare-and-set: once across processes) → take the lease →
    list changes (updated-since watermark, or resume a cursor), bounded by max_pages →
    per page: classify each record by content hash (created / updated / unchanged) →
    publish record.created|updated events → write the rows → save the cursor

Why events are published before the rows are written: an event whose row then fails to
commit is harmless (its id is deterministic — model, connection, record, version, hash —
so the re-run publishes the same id again and the event log drops it), while a row
committed before a crash that lost its event would be "unchanged" on the re-run and its
change would never be told.

Deletes come only from reconciliation (a full listing: live records it did not see are
deleted) and from webhook events the sync maps to a delete: an incremental listing says
nothing about what is gone. A record written after the reconciliation started (a webhook
meanwhile) is never deleted by it.

Concurrency: rows change with a compare-and-set on their version, so a poll and a webhook
touching the same record never lose each other's change; a change older than the stored
one (by the upstream's ``updated_at``) is ignored, so a late webhook cannot roll a record
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, cast
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from patchwire.calls import CallRequest, PageCursor, effective_pagination
from patchwire.errors import PatchwireError, StoreError
from patchwire.expressions import Expression, ExpressionError, compile_expression
from patchwire.ids import new_id
from patchwire.ports import ConnectionDirectory, HasCalls, HasStore
from patchwire.store import Store, new_owner_id
from patchwire.store.models import EventRow
from patchwire.sync._records import (
    RECORDS,
    ExistingRecord,
    RecordStore,
    content_hash,
    iso,
    search_text,
)
from patchwire.sync.spec import SyncRegistry, SyncSpec, SyncWebhook, UnknownSync

__all__ = [
    "Publisher",
    "SyncEngine",
    "SyncHost",
    "SyncOutcome",
    "SyncStatus",
    "WebhookEvent",
]

log = logging.getLogger("patchwire.sync")

_EVENTS = cast(Table, EventRow.__table__)

#: records written per transaction while a listing streams in
_CHUNK = 100
#: compare-and-set retries when a webhook changes a record a poll is writing
_CAS_TRIES = 3

Kind = Literal["poll", "reconcile", "webhook"]

#: ``publish(store, type, data, *, source, run_id, event_id) -> event id`` (the outbound
#: webhooks' event log, ``patchwire.webhooks._events.publish``)
Publisher = Callable[..., Awaitable[str]]


class SyncHost(HasCalls, HasStore, ConnectionDirectory, Protocol):
    """What the sync engine is given: the call path for its listings, the store its
    records live in, the connections it polls for (the ``Runtime`` or the facade)."""


class WebhookEvent(Protocol):
    """What the sync needs of an inbox event (``patchwire.webhooks._inbox.InboxEvent``)."""

    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def payload(self) -> Any: ...
    @property
    def received_at(self) -> Any: ...


@dataclass(frozen=True)
class _Item:
    """A record as read from the upstream, about to be applied."""

    id: str
    data: Any
    updated_at: str | None



# -- outcomes and status --------------------------------------------------------------------


@dataclass
class SyncOutcome:
    """How one poll, reconciliation or webhook event went for one connection."""

    sync: str
    connection: str
    kind: Kind
    status: Literal["ok", "error", "busy"] = "ok"
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    pages: int = 0
    cursor: Any = None
    error: str | None = None
    events: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sync": self.sync, "connection": self.connection, "kind": self.kind,
                "status": self.status, "created": self.created, "updated": self.updated,
                "deleted": self.deleted, "unchanged": self.unchanged, "pages": self.pages,
                "cursor": self.cursor, "error": self.error, "events": len(self.events)}


@dataclass(frozen=True)
class SyncStatus:
    sync: str
    model: str
    connection: str
    cursor: Any
    last_poll_at: float | None
    last_status: str | None
    last_error: str | None
    last_reconcile_at: float | None
    records: int
    deleted: int
    next_poll_at: float | None
    next_reconcile_at: float | None
    polling: bool

    def to_dict(self) -> dict[str, Any]:
        return {"sync": self.sync, "model": self.model, "connection": self.connection,
                "cursor": self.cursor, "last_poll_at": iso(self.last_poll_at),
                "last_status": self.last_status, "last_error": self.last_error,
                "last_reconcile_at": iso(self.last_reconcile_at), "records": self.records,
                "deleted": self.deleted, "next_poll_at": iso(self.next_poll_at),
                "next_reconcile_at": iso(self.next_reconcile_at), "polling": self.polling}


class _Compiled:
    """A sync's expressions, compiled once."""

    def __init__(self, spec: SyncSpec) -> None:
        self.args = {k: compile_expression(v) if isinstance(v, str) else v
                     for k, v in spec.args.items()}
        self.records = compile_expression(spec.records) if spec.records else None
        self.record = compile_expression(spec.record)
        self.record_id = compile_expression(spec.record_id)
        self.updated_at = compile_expression(spec.updated_at) if spec.updated_at else None
        self.next = (compile_expression(spec.incremental.next)
                     if spec.incremental.next else None)
        self.hooks: list[tuple[SyncWebhook, dict[str, Expression | None]]] = [
            (hook, {"when": compile_expression(hook.when) if hook.when else None,
                    "record": compile_expression(hook.record),
                    "delete": compile_expression(hook.delete) if hook.delete else None,
                    "connection": compile_expression(hook.connection[1:])
                    if hook.connection and hook.connection.startswith("=") else None})
            for hook in spec.webhook]


def _later(a: Any, b: Any) -> bool:
    """Whether watermark ``a`` is after ``b`` (numbers by value, anything else as text)."""
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a > b
    return str(a) > str(b)


def _cron_slots(cron: str, timezone: str, now: float) -> tuple[float, float]:
    """(the latest slot at or before ``now``, the next slot after it)."""
    from croniter import croniter

    tz = ZoneInfo(timezone)
    it = croniter(cron, datetime.fromtimestamp(now, tz))
    nxt = cast(datetime, it.get_next(datetime)).timestamp()
    prev_it = croniter(cron, datetime.fromtimestamp(now + 1e-3, tz))
    prev = cast(datetime, prev_it.get_prev(datetime)).timestamp()
    return prev, nxt


async def _default_publisher() -> Publisher | None:
    try:
        from patchwire.webhooks import publish
    except ImportError:
        return None
    return cast(Publisher, publish)


# -- the engine -----------------------------------------------------------------------------


class SyncEngine:
    """Runs syncs over ``host`` (the call path, the store, the connections: the runtime
    or the facade): scheduled polls and reconciliations (``start()`` a loop, or
    call :meth:`tick`), manual runs (:meth:`run`) and webhook events
    (:meth:`handle_webhook_event`, an inbox handler).

    ``clock`` (epoch seconds) can be replaced in tests; ``publisher`` is the event log's
    ``publish`` (default: the outbound webhooks' one); ``lease`` bounds how long a poll of
    a process that died keeps others from polling.
    """

    def __init__(
        self, host: SyncHost, syncs: SyncRegistry | Iterable[SyncSpec], *,
        owner: str | None = None, clock: Callable[[], float] = time.time,
        poll_interval: float = 5.0, lease: float = 120.0,
        publisher: Publisher | None = None,
    ) -> None:
        self._host = host
        self._syncs: dict[str, SyncSpec] = {s.id: s for s in syncs}
        self.owner = owner or new_owner_id()
        self.clock = clock
        self.poll_interval = poll_interval
        self.lease = lease
        self._publisher = publisher
        self._publisher_loaded = publisher is not None
        self._compiled: dict[str, _Compiled] = {}
        self._running: set[tuple[str, str]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._records: RecordStore | None = None
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def records(self) -> RecordStore:
        if self._records is None or self._records.store is not self._host.store:
            self._records = RecordStore(self._host.store)
        return self._records

    async def start(self) -> SyncEngine:
        """Poll on schedule in the background until :meth:`stop`."""
        self._started = True
        if self._loop_task is None and self._syncs:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def use_syncs(self, syncs: Iterable[SyncSpec]) -> None:
        """Reloaded definitions: the next ticks poll ``syncs`` (a poll in flight ends with
        the definition it started with). A started engine begins polling if it had no
        sync before."""
        self._syncs = {s.id: s for s in syncs}
        self._compiled.clear()
        if self._started and self._loop_task is None and self._syncs:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        self._started = False
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    async def __aenter__(self) -> SyncEngine:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad tick (the store briefly unreachable) must not end all syncing.
                log.exception("sync scheduler tick failed; trying again")
            await asyncio.sleep(self.poll_interval)

    # -- definitions -------------------------------------------------------------------------

    def syncs(self) -> list[SyncSpec]:
        return sorted(self._syncs.values(), key=lambda s: s.id)

    def sync(self, sync_id: str) -> SyncSpec:
        try:
            return self._syncs[sync_id]
        except KeyError:
            known = ", ".join(sorted(self._syncs)) or "none"
            raise UnknownSync(f"unknown sync {sync_id!r} (known: {known})") from None

    def _compile(self, spec: SyncSpec) -> _Compiled:
        compiled = self._compiled.get(spec.id)
        if compiled is None:
            compiled = self._compiled[spec.id] = _Compiled(spec)
        return compiled

    async def connections_of(self, spec: SyncSpec) -> list[str]:
        """The connections a sync runs for: its list, else every one of its connector."""
        existing = [c.name for c in await self._host.list_connections(spec.connector)]
        if spec.connections:
            return [c for c in spec.connections if c in existing]
        return existing

    # -- scheduling --------------------------------------------------------------------------

    async def tick(self, now: float | None = None) -> list[SyncOutcome]:
        """Run the polls and reconciliations whose schedule slot is due, each slot once
        across processes (missed slots collapse into one run)."""
        now = self.clock() if now is None else now
        outcomes: list[SyncOutcome] = []
        for spec in self.syncs():
            for connection in await self.connections_of(spec):
                outcomes.extend(await self._due(spec, connection, now))
        return outcomes

    async def _due(self, spec: SyncSpec, connection: str, now: float) -> list[SyncOutcome]:
        records = self.records
        await records.ensure_state(spec.id, connection, now,
                                   now if spec.reconcile is not None else None)
        out: list[SyncOutcome] = []
        poll_slot, _ = _cron_slots(spec.schedule.cron, spec.schedule.timezone, now)
        unless: tuple[str, float] | None = None
        if spec.reconcile is not None:
            slot, _ = _cron_slots(spec.reconcile.cron, spec.reconcile.timezone, now)
            # One claim for both slots: the full listing is also this slot's poll, and
            # no other process polls while it is due.
            if await records.claim_slot(spec.id, connection, "reconcile_slot", slot,
                                        also={"poll_slot": poll_slot}):
                outcome = await self.reconcile(spec.id, connection)
                if outcome.status == "busy":
                    # a manual poll holds the lease: try again at the next tick rather
                    # than skipping a reconciliation for a whole period
                    await records.update_state(spec.id, connection, reconcile_slot=None)
                out.append(outcome)
                return out
            unless = ("reconcile_slot", slot)
        if await records.claim_slot(spec.id, connection, "poll_slot", poll_slot,
                                    unless_due=unless):
            out.append(await self.poll(spec.id, connection))
        return out

    async def run(self, sync_id: str, *, connection: str | None = None,
                  full: bool = False) -> list[SyncOutcome]:
        """Poll (``full``: reconcile) now, for one connection or every one of the sync's."""
        spec = self.sync(sync_id)
        targets = [connection] if connection else await self.connections_of(spec)
        now = self.clock()
        out = []
        for name in targets:
            await self.records.ensure_state(spec.id, name, now,
                                            now if spec.reconcile is not None else None)
            out.append(await (self.reconcile(spec.id, name) if full
                              else self.poll(spec.id, name)))
        return out

    async def status(self) -> list[SyncStatus]:
        now = self.clock()
        states = {(s["sync_id"], s["connection"]): s for s in await self.records.states()}
        out: list[SyncStatus] = []
        for spec in self.syncs():
            for connection in await self.connections_of(spec):
                state = states.get((spec.id, connection), {})
                live, gone = await self.records.counts(spec.id, connection)
                lease_until = state.get("lease_until")
                next_poll = (now if state.get("poll_slot") is None
                             else _cron_slots(spec.schedule.cron, spec.schedule.timezone,
                                              max(now, state["poll_slot"]))[1])
                next_rec = (_cron_slots(spec.reconcile.cron, spec.reconcile.timezone, now)[1]
                            if spec.reconcile is not None else None)
                out.append(SyncStatus(
                    sync=spec.id, model=spec.model, connection=connection,
                    cursor=state.get("cursor"), last_poll_at=state.get("last_poll_at"),
                    last_status=state.get("last_status"), last_error=state.get("last_error"),
                    last_reconcile_at=state.get("last_reconcile_at"), records=live,
                    deleted=gone, next_poll_at=next_poll, next_reconcile_at=next_rec,
                    polling=bool(state.get("lease_owner")) and lease_until is not None
                    and lease_until > now))
        return out

    # -- polls -------------------------------------------------------------------------------

    async def poll(self, sync_id: str, connection: str) -> SyncOutcome:
        """One incremental poll (``full`` mode: a listing without deletes)."""
        return await self._leased(self.sync(sync_id), connection, "poll")

    async def reconcile(self, sync_id: str, connection: str) -> SyncOutcome:
        """A full listing: upserts what changed and deletes live records not listed."""
        return await self._leased(self.sync(sync_id), connection, "reconcile")

    async def _leased(self, spec: SyncSpec, connection: str, kind: Kind) -> SyncOutcome:
        outcome = SyncOutcome(spec.id, connection, kind)
        key = (spec.id, connection)
        records = self.records
        now = self.clock()
        await records.ensure_state(spec.id, connection, now,
                                   now if spec.reconcile is not None else None)
        if key in self._running or not await records.take_lease(
                spec.id, connection, self.owner, now, now + self.lease):
            outcome.status = "busy"  # another poll of the same connection is under way
            return outcome
        self._running.add(key)
        try:
            state = await records.state(spec.id, connection) or {}
            outcome.cursor = state.get("cursor")
            try:
                if kind == "reconcile":
                    await self._reconcile(spec, connection, outcome)
                else:
                    await self._poll(spec, connection, outcome)
            except (PatchwireError, ExpressionError) as exc:
                outcome.status, outcome.error = "error", str(exc)
                log.warning("sync %s (%s) %s failed: %s", spec.id, connection, kind, exc)
            done = self.clock()
            values: dict[str, Any] = {"last_status": outcome.status,
                                      "last_error": outcome.error, "updated_at": done,
                                      "last_poll_at": done}
            if kind == "reconcile" and outcome.status == "ok":
                values["last_reconcile_at"] = done
            await records.update_state(spec.id, connection, self.owner, **values)
        finally:
            self._running.discard(key)
            with contextlib.suppress(StoreError):
                await records.update_state(spec.id, connection, self.owner,
                                           lease_owner=None, lease_until=None)
        return outcome

    async def _renew(self, spec: SyncSpec, connection: str) -> None:
        now = self.clock()
        await self.records.update_state(spec.id, connection, self.owner,
                                        lease_until=now + self.lease)

    def _arguments(self, spec: SyncSpec, since: Any, cursor: Any, full: bool) -> dict[str, Any]:
        compiled = self._compile(spec)
        bindings = {"since": since, "cursor": cursor, "full": full}
        out: dict[str, Any] = {}
        for name, value in compiled.args.items():
            evaluated = value.evaluate({}, bindings) if isinstance(value, Expression) else value
            if evaluated is not None:  # an unset watermark leaves the argument out
                out[name] = evaluated
        return out

    async def _poll(self, spec: SyncSpec, connection: str, outcome: SyncOutcome) -> None:
        mode = spec.incremental.mode
        if mode == "cursor":
            await self._poll_cursor(spec, connection, outcome)
            return
        since = outcome.cursor if mode == "updated_since" else None
        args = self._arguments(spec, since, since, mode == "full")
        watermark = since
        async for chunk in self._listing(spec, connection, args, spec.max_pages, outcome):
            await self._apply(spec, connection, chunk, "poll", outcome)
            if mode == "updated_since":
                for item in chunk:
                    if item.updated_at is not None and (
                            watermark is None or _later(item.updated_at, watermark)):
                        watermark = item.updated_at
            await self._renew(spec, connection)
        if mode == "updated_since" and watermark != since:
            outcome.cursor = watermark
            await self.records.update_state(spec.id, connection, self.owner, cursor=watermark)

    async def _poll_cursor(self, spec: SyncSpec, connection: str,
                           outcome: SyncOutcome) -> None:
        calls = self._host.calls
        pagination = effective_pagination(calls.action(spec.action))
        param = spec.incremental.param or pagination.cursor_param
        nxt = self._compile(spec).next or (
            compile_expression(pagination.next_cursor) if pagination.next_cursor else None)
        if nxt is None:
            raise UnknownSync(f"sync {spec.id}: cursor mode needs `incremental.next` (the "
                              f"action {spec.action} declares no next_cursor)")
        cursor = outcome.cursor
        for _ in range(spec.max_pages):
            args = self._arguments(spec, None, cursor, False)
            page = PageCursor(
                {} if cursor is None else {param: cursor if isinstance(cursor, str)
                                           else orjson.dumps(cursor).decode()},
                page_size=(pagination.limit_param, pagination.page_size)
                if pagination.limit_param and pagination.page_size else None)
            result = (await calls.execute(CallRequest(spec.action, args, connection,
                                                      page=page))).result
            outcome.pages += 1
            await self._apply(spec, connection, self._items(spec, result), "poll", outcome)
            following = nxt.evaluate(result)
            if following in (None, "", False) or following == cursor:
                break  # the end: keep this page's cursor to re-read it next time
            cursor = following
            outcome.cursor = cursor
            # saved page by page: a poll cut short resumes here
            await self.records.update_state(spec.id, connection, self.owner, cursor=cursor)
            await self._renew(spec, connection)

    async def _listing(self, spec: SyncSpec, connection: str, args: dict[str, Any],
                       max_pages: int | None,
                       outcome: SyncOutcome) -> AsyncIterator[list[_Item]]:
        """The action's records in chunks: every page through the call path."""
        calls = self._host.calls
        request = CallRequest(spec.action, args, connection)
        if effective_pagination(calls.action(spec.action)).style == "none":
            result = (await calls.execute(request)).result
            outcome.pages += 1
            items = self._items(spec, result)
            for start in range(0, len(items), _CHUNK):
                yield items[start:start + _CHUNK]
            return
        chunk: list[_Item] = []
        async for raw in calls.paginate(request, max_pages=max_pages):
            chunk.append(self._item(spec, raw))
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _items(self, spec: SyncSpec, result: Any) -> list[_Item]:
        """One page's records (``records``, else the pagination's items, else the list)."""
        compiled = self._compile(spec)
        if compiled.records is not None:
            value = compiled.records.evaluate(result)
        else:
            action = self._host.calls.action(spec.action)
            items = effective_pagination(action).items
            if items and action.response is None and not isinstance(result, list):
                value = compile_expression(items).evaluate(result)
            else:
                value = result
        if value is None:
            return []
        return [self._item(spec, raw) for raw in (value if isinstance(value, list) else [value])]

    def _item(self, spec: SyncSpec, raw: Any) -> _Item:
        compiled = self._compile(spec)
        data = compiled.record.evaluate(raw)
        record_id = compiled.record_id.evaluate(data)
        if record_id is None or isinstance(record_id, dict | list):
            raise ExpressionError(f"sync {spec.id}: record_id {spec.record_id!r} gave "
                                  f"{record_id!r} for a record; it must give a string or number")
        updated = compiled.updated_at.evaluate(data) if compiled.updated_at else None
        return _Item(str(record_id), data, None if updated is None else str(updated))

    async def _reconcile(self, spec: SyncSpec, connection: str, outcome: SyncOutcome) -> None:
        started = self.clock()
        args = self._arguments(spec, None, None, True)
        seen: set[str] = set()
        watermark = outcome.cursor if spec.incremental.mode == "updated_since" else None
        # max_pages None: the pagination's own bound fails the listing rather than cutting
        # it short, and a partial listing must never delete anything.
        async for chunk in self._listing(spec, connection, args, None, outcome):
            await self._apply(spec, connection, chunk, "reconcile", outcome)
            for item in chunk:
                seen.add(item.id)
                if (watermark is not None and item.updated_at is not None
                        and _later(item.updated_at, watermark)):
                    watermark = item.updated_at
            await self._renew(spec, connection)
        if watermark is not None and watermark != outcome.cursor:
            outcome.cursor = watermark
            await self.records.update_state(spec.id, connection, self.owner, cursor=watermark)
        stmt = select(RECORDS.c.record_id).where(
            RECORDS.c.sync_id == spec.id, RECORDS.c.connection == connection,
            RECORDS.c.model == spec.model, RECORDS.c.deleted_at.is_(None),
            RECORDS.c.seen_at < started)
        async with self._host.store.engine.connect() as conn:
            gone = [r[0] for r in (await conn.execute(stmt)).all() if r[0] not in seen]
        for start in range(0, len(gone), _CHUNK):
            await self._delete(spec, connection, gone[start:start + _CHUNK], "reconcile",
                               outcome, before=started)

    # -- applying changes --------------------------------------------------------------------

    async def _publisher_fn(self) -> Publisher:
        if not self._publisher_loaded:
            self._publisher = await _default_publisher()
            self._publisher_loaded = True
        return self._publisher or self._insert_event

    async def _insert_event(self, store: Store, type: str, data: Any, *, source: str,
                            run_id: str | None = None, event_id: str | None = None) -> str:
        """Fallback while the outbound webhooks' ``publish`` is not installed: the same
        row in the event log, written once per id."""
        event_id = event_id or new_id()
        dialect = postgresql if store.dialect == "postgresql" else sqlite
        stmt = dialect.insert(_EVENTS).values(
            id=event_id, type=type, data=data, run_id=run_id, source=source,
            created_at=self.clock()).on_conflict_do_nothing()
        async with store.engine.begin() as conn:
            await conn.execute(stmt)
        return event_id

    async def _emit(self, spec: SyncSpec, connection: str, kind: str, record_id: str,
                    version: int, digest: str, data: Any, previous: Any,
                    outcome: SyncOutcome) -> None:
        event_id = hashlib.sha256(
            f"{spec.model}\0{connection}\0{record_id}\0{version}\0{kind}\0{digest}".encode()
        ).hexdigest()[:32]
        body: dict[str, Any] = {"sync": spec.id, "model": spec.model,
                                "connection": connection, "id": record_id,
                                "version": version, "record": data}
        if kind == "updated" and isinstance(previous, Mapping) and isinstance(data, Mapping):
            body["changed"] = sorted(k for k in {*previous, *data}
                                     if previous.get(k) != data.get(k))
        publish = await self._publisher_fn()
        outcome.events.append(await publish(self._host.store, f"record.{kind}", body,
                                            source="sync", event_id=event_id))

    async def _apply(self, spec: SyncSpec, connection: str, items: Sequence[_Item],
                     source: Kind, outcome: SyncOutcome) -> None:
        """Upsert records with change detection; retry the ones a concurrent writer
        changed under us."""
        pending = list({item.id: item for item in items}.values())  # the last copy wins
        for _ in range(_CAS_TRIES):
            if not pending:
                return
            pending = await self._apply_once(spec, connection, pending, source, outcome)
        if pending:
            raise StoreError(f"sync {spec.id}: {len(pending)} record(s) kept changing "
                             "under concurrent writers; they are retried on the next poll")

    async def _apply_once(self, spec: SyncSpec, connection: str, items: list[_Item],
                          source: Kind, outcome: SyncOutcome) -> list[_Item]:
        records = self.records
        existing = await records.existing(spec.model, connection, [i.id for i in items])
        now = self.clock()
        unchanged: list[str] = []
        writes: list[tuple[_Item, ExistingRecord | None, int, str, str]] = []
        for item in items:
            old = existing.get(item.id)
            digest = content_hash(item.data)
            if old is not None and old.deleted_at is None and old.hash == digest:
                unchanged.append(item.id)
                continue
            if (old is not None and item.updated_at is not None
                    and old.source_updated_at is not None
                    and _later(old.source_updated_at, item.updated_at)):
                unchanged.append(item.id)  # an older copy than ours (a late webhook)
                continue
            kind = "created" if old is None or old.deleted_at is not None else "updated"
            writes.append((item, old, (old.version + 1) if old else 1, digest, kind))
        for item, old, version, digest, kind in writes:
            await self._emit(spec, connection, kind, item.id, version, digest, item.data,
                             old.data if old else None, outcome)
        conflicts: list[_Item] = []
        insert_stmt = records.insert_fn()
        async with self._host.store.engine.begin() as conn:
            for item, old, version, digest, kind in writes:
                values = {"sync_id": spec.id, "data": item.data, "content_hash": digest,
                          "version": version, "search_text": search_text(item.data),
                          "source_updated_at": item.updated_at, "changed_by": source,
                          "updated_at": now, "seen_at": now, "deleted_at": None}
                if old is None:
                    stmt = insert_stmt(RECORDS).values(
                        model=spec.model, connection=connection, record_id=item.id,
                        first_seen_at=now, **values).on_conflict_do_nothing()
                else:
                    stmt = update(RECORDS).where(
                        RECORDS.c.model == spec.model, RECORDS.c.connection == connection,
                        RECORDS.c.record_id == item.id,
                        RECORDS.c.version == old.version).values(**values)
                result = await conn.execute(stmt)
                if not result.rowcount:
                    conflicts.append(item)
                    continue
                if kind == "created":
                    outcome.created += 1
                else:
                    outcome.updated += 1
            if unchanged:
                outcome.unchanged += len(unchanged)
                await conn.execute(update(RECORDS).where(
                    RECORDS.c.model == spec.model, RECORDS.c.connection == connection,
                    RECORDS.c.record_id.in_(unchanged)).values(seen_at=now))
        return conflicts

    async def _delete(self, spec: SyncSpec, connection: str, ids: Sequence[str],
                      source: Kind, outcome: SyncOutcome, *, before: float | None = None) -> None:
        """Mark live records deleted (and say so once each). ``before``: only records not
        seen since then (reconciliation)."""
        existing = await self.records.existing(spec.model, connection, list(ids))
        now = self.clock()
        for record_id in ids:
            old = existing.get(record_id)
            if old is None or old.deleted_at is not None:
                continue
            version = old.version + 1
            await self._emit(spec, connection, "deleted", record_id, version, old.hash,
                             old.data, None, outcome)
            where = [RECORDS.c.model == spec.model, RECORDS.c.connection == connection,
                     RECORDS.c.record_id == record_id, RECORDS.c.version == old.version]
            if before is not None:
                where.append(RECORDS.c.seen_at < before)
            async with self._host.store.engine.begin() as conn:
                result = await conn.execute(update(RECORDS).where(*where).values(
                    version=version, deleted_at=now, updated_at=now, changed_by=source))
            if result.rowcount:
                outcome.deleted += 1

    # -- webhooks ----------------------------------------------------------------------------

    async def handle_webhook_event(self, event: WebhookEvent) -> None:
        """Apply an inbound webhook event to the records of every sync mapping it (an
        ``Inbox.add_handler`` handler). Idempotent: an event applied twice changes
        nothing the second time. Store errors propagate so the inbox retries; a mapping
        that fails on this event is logged and skipped (retrying cannot fix it)."""
        for spec in self.syncs():
            compiled = self._compile(spec)
            for hook, exprs in compiled.hooks:
                if hook.source != event.source or not any(
                        fnmatch.fnmatchcase(event.type or "", p) for p in hook.types):
                    continue
                try:
                    await self._apply_event(spec, hook, exprs, event)
                except (ExpressionError, PatchwireError) as exc:
                    if isinstance(exc, StoreError):
                        raise
                    log.warning("sync %s: webhook event %s (%s) not applied: %s", spec.id,
                                event.id, event.type, exc)

    async def _apply_event(self, spec: SyncSpec, hook: SyncWebhook,
                           exprs: Mapping[str, Expression | None],
                           event: WebhookEvent) -> SyncOutcome | None:
        received = event.received_at
        meta = {"id": event.id, "source": event.source, "event_id": event.event_id,
                "type": event.type,
                "received_at": received.isoformat() if isinstance(received, datetime)
                else received}
        bindings = {"event": meta}
        payload = event.payload
        when = exprs["when"]
        if when is not None and not when.evaluate(payload, bindings):
            return None
        connection = await self._event_connection(spec, hook, exprs["connection"], payload,
                                                  bindings)
        if connection is None:
            log.warning("sync %s: webhook event %s names no connection of the sync; set "
                        "webhook.connection", spec.id, event.id)
            return None
        record_expr = exprs["record"]
        assert record_expr is not None
        raw = record_expr.evaluate(payload, bindings)
        if raw is None:
            return None
        item = self._item(spec, raw)
        outcome = SyncOutcome(spec.id, connection, "webhook")
        delete = exprs["delete"]
        if delete is not None and delete.evaluate(payload, bindings):
            await self._delete(spec, connection, [item.id], "webhook", outcome)
        else:
            await self._apply(spec, connection, [item], "webhook", outcome)
        return outcome

    async def _event_connection(self, spec: SyncSpec, hook: SyncWebhook,
                                expr: Expression | None, payload: Any,
                                bindings: Mapping[str, Any]) -> str | None:
        if expr is not None:
            value = expr.evaluate(payload, bindings)
            return str(value) if value else None
        if hook.connection:
            return hook.connection
        names = await self.connections_of(spec)
        return names[0] if len(names) == 1 else None
