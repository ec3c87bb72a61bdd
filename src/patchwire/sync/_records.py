"""Synced records in the store: the ``sync_records`` and ``sync_states`` tables, read by
the API, the CLI and the records tools, written by the sync engine."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ColumnElement

from patchwire.store import Store, SyncRecordRow, SyncStateRow

__all__ = [
    "MAX_SEARCH_TEXT",
    "RECORDS",
    "STATES",
    "ExistingRecord",
    "RecordStore",
    "SyncRecord",
    "content_hash",
    "iso",
    "record_of",
    "search_text",
]

RECORDS = cast(Table, SyncRecordRow.__table__)
STATES = cast(Table, SyncStateRow.__table__)
#: the text kept for ``?q=`` search per record
MAX_SEARCH_TEXT = 20_000


# -- records ----------------------------------------------------------------------------------


def content_hash(data: Any) -> str:
    """SHA-256 of the canonical JSON (sorted keys): equal content, equal hash."""
    blob = orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(blob).hexdigest()


def search_text(data: Any) -> str:
    """The record's string and number values, lower-cased, for substring search."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            parts.append(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(str(value))

    walk(data)
    return " ".join(parts).lower()[:MAX_SEARCH_TEXT]


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True)
class SyncRecord:
    """A synced record as the API, CLI and tool show it."""

    model: str
    connection: str
    id: str
    sync: str
    data: Any
    version: int
    source_updated_at: str | None
    changed_by: str
    first_seen_at: float
    updated_at: float
    seen_at: float
    deleted_at: float | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "connection": self.connection, "id": self.id,
                "sync": self.sync, "data": self.data, "version": self.version,
                "deleted": self.deleted, "source_updated_at": self.source_updated_at,
                "changed_by": self.changed_by, "first_seen_at": iso(self.first_seen_at),
                "updated_at": iso(self.updated_at), "seen_at": iso(self.seen_at),
                "deleted_at": iso(self.deleted_at)}


def record_of(m: Any) -> SyncRecord:
    return SyncRecord(model=m["model"], connection=m["connection"], id=m["record_id"],
                      sync=m["sync_id"], data=m["data"], version=m["version"],
                      source_updated_at=m["source_updated_at"], changed_by=m["changed_by"],
                      first_seen_at=m["first_seen_at"], updated_at=m["updated_at"],
                      seen_at=m["seen_at"], deleted_at=m["deleted_at"])


def _encode_page(connection: str, record_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([connection, record_id])).decode().rstrip("=")


def _decode_page(cursor: str) -> tuple[str, str]:
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        connection, record_id = raw
        if isinstance(connection, str) and isinstance(record_id, str):
            return connection, record_id
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise ValueError("cursor is not one this API issued")


def _like_escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class ExistingRecord:
    """What is stored of a record, to tell a change from a repeat."""

    hash: str
    version: int
    deleted_at: float | None
    source_updated_at: str | None
    data: Any


class RecordStore:
    """The ``sync_records`` and ``sync_states`` tables over the store's engine."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: state rows known to exist (an engine keeps one RecordStore: no write per tick)
        self._ensured: set[tuple[str, str]] = set()

    # -- reading -----------------------------------------------------------------------------

    async def search(
        self, model: str, *, connection: str | Sequence[str] | None = None,
        query: str | None = None, filters: Mapping[str, str] | None = None,
        limit: int = 50, after: str | None = None, include_deleted: bool = False,
        sync_id: str | None = None,
    ) -> tuple[list[SyncRecord], str | None]:
        """Records of ``model`` ordered by (connection, id), and the cursor of the next page.

        ``query``: every word must occur in the record's text (case-insensitive);
        ``filters``: top-level fields equal to these strings; ``after``: a cursor
        returned before (keyset pagination: pages stay stable while records change).
        """
        where: list[ColumnElement[bool]] = [RECORDS.c.model == model]
        if isinstance(connection, str):
            where.append(RECORDS.c.connection == connection)
        elif connection is not None:
            where.append(RECORDS.c.connection.in_(list(connection)))
        if sync_id is not None:
            where.append(RECORDS.c.sync_id == sync_id)
        if not include_deleted:
            where.append(RECORDS.c.deleted_at.is_(None))
        for word in (query or "").lower().split():
            where.append(RECORDS.c.search_text.like(f"%{_like_escape(word)}%", escape="\\"))
        for name, value in (filters or {}).items():
            where.append(RECORDS.c.data[name].as_string() == value)
        if after:
            conn_after, id_after = _decode_page(after)
            where.append(or_(RECORDS.c.connection > conn_after,
                             and_(RECORDS.c.connection == conn_after,
                                  RECORDS.c.record_id > id_after)))
        limit = max(1, min(limit, 1000))
        stmt = (select(RECORDS).where(*where)
                .order_by(RECORDS.c.connection, RECORDS.c.record_id).limit(limit + 1))
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        records = [record_of(r._mapping) for r in rows[:limit]]
        more = len(rows) > limit
        return records, (_encode_page(records[-1].connection, records[-1].id)
                         if more and records else None)

    async def get(self, model: str, connection: str, record_id: str) -> SyncRecord | None:
        stmt = select(RECORDS).where(RECORDS.c.model == model,
                                      RECORDS.c.connection == connection,
                                      RECORDS.c.record_id == record_id)
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else record_of(row._mapping)

    async def counts(self, sync_id: str, connection: str) -> tuple[int, int]:
        """(live records, deleted records) of one sync and connection."""
        stmt = (select(RECORDS.c.deleted_at.is_(None), func.count())
                .where(RECORDS.c.sync_id == sync_id, RECORDS.c.connection == connection)
                .group_by(RECORDS.c.deleted_at.is_(None)))
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        live = sum(int(n) for alive, n in rows if alive)
        gone = sum(int(n) for alive, n in rows if not alive)
        return live, gone

    async def existing(self, model: str, connection: str,
                        ids: Sequence[str]) -> dict[str, ExistingRecord]:
        found: dict[str, ExistingRecord] = {}
        async with self.store.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                stmt = select(RECORDS.c.record_id, RECORDS.c.content_hash,
                              RECORDS.c.version, RECORDS.c.deleted_at,
                              RECORDS.c.source_updated_at, RECORDS.c.data).where(
                    RECORDS.c.model == model, RECORDS.c.connection == connection,
                    RECORDS.c.record_id.in_(list(ids[start:start + 500])))
                for row in (await conn.execute(stmt)).all():
                    found[row[0]] = ExistingRecord(row[1], row[2], row[3], row[4], row[5])
        return found

    # -- state -------------------------------------------------------------------------------

    def insert_fn(self) -> Any:
        return (postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert)

    async def ensure_state(self, sync_id: str, connection: str, now: float,
                           reconcile_from: float | None) -> None:
        if (sync_id, connection) in self._ensured:
            return
        # A new reconciliation schedule starts from now: the first poll lists everything
        # already; the poll slot starts empty, so the first poll runs at once.
        stmt = self.insert_fn()(STATES).values(
            sync_id=sync_id, connection=connection, cursor=None, poll_slot=None,
            reconcile_slot=reconcile_from, updated_at=now).on_conflict_do_nothing()
        async with self.store.engine.begin() as conn:
            await conn.execute(stmt)
        self._ensured.add((sync_id, connection))

    async def state(self, sync_id: str, connection: str) -> dict[str, Any] | None:
        stmt = select(STATES).where(STATES.c.sync_id == sync_id,
                                     STATES.c.connection == connection)
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else dict(row._mapping)

    async def claim_slot(self, sync_id: str, connection: str, column: str, slot: float,
                         *, also: Mapping[str, Any] | None = None,
                         unless_due: tuple[str, float] | None = None) -> bool:
        """Compare-and-set the last slot run: True for exactly one claimant per slot.

        ``also``: more columns set by the same claim; ``unless_due``: (column, slot) —
        no claim while that other slot is due (its claimant covers this one too).
        """
        col = STATES.c[column]
        where = [STATES.c.sync_id == sync_id, STATES.c.connection == connection,
                 or_(col.is_(None), col < slot)]
        if unless_due is not None:
            other = STATES.c[unless_due[0]]
            where.append(and_(other.is_not(None), other >= unless_due[1]))
        stmt = update(STATES).where(*where).values({column: slot, **(also or {})})
        async with self.store.engine.begin() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def take_lease(self, sync_id: str, connection: str, owner: str, now: float,
                         until: float) -> bool:
        stmt = (update(STATES)
                .where(STATES.c.sync_id == sync_id, STATES.c.connection == connection,
                       or_(STATES.c.lease_owner.is_(None), STATES.c.lease_until < now,
                           STATES.c.lease_owner == owner))
                .values(lease_owner=owner, lease_until=until))
        async with self.store.engine.begin() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)

    async def update_state(self, sync_id: str, connection: str, owner: str | None = None,
                           **values: Any) -> None:
        where = [STATES.c.sync_id == sync_id, STATES.c.connection == connection]
        if owner is not None:  # only while holding the lease
            where.append(STATES.c.lease_owner == owner)
        async with self.store.engine.begin() as conn:
            await conn.execute(update(STATES).where(*where).values(**values))

    async def states(self) -> list[dict[str, Any]]:
        stmt = select(STATES).order_by(STATES.c.sync_id, STATES.c.connection)
        async with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]
