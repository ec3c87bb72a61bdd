"""Binary answers kept for their callers (``blobs``).

When an upstream answers a PDF, an image or any other bytes, the call's result is their
metadata and a reference (``{"blob": id, ...}``); the call path keeps the bytes here,
with the connection they were fetched through and that connection's end user, for a
while (:data:`DEFAULT_BLOB_TTL`). ``GET /api/v1/blobs/{id}`` hands them out: an end user
only their own, an operator any.

Ids are 32 random hex characters (drawn by the call path), so a reference cannot be
guessed; the end-user filter holds regardless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Table, delete, insert, select

from patchwire.store._blob_models import BlobRow
from patchwire.store.core import Store
from patchwire.store.records import utcnow

__all__ = ["DEFAULT_BLOB_TTL", "BlobRepository", "NewBlob", "StoredBlob"]

#: how long a blob is kept unless the repository is told otherwise
DEFAULT_BLOB_TTL: Final = timedelta(hours=24)
#: expired blobs deleted per write, at most (each write clears a little of the backlog)
_PURGE_BATCH: Final = 100

_BLOBS = cast(Table, BlobRow.__table__)


@dataclass(frozen=True)
class NewBlob:
    """A binary answer to keep: its id (the reference already in the call's result),
    where it came from and its bytes."""

    id: str
    connection: str
    end_user: str | None
    action: str
    content_type: str
    filename: str | None
    sha256: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class StoredBlob:
    """A kept blob, bytes included."""

    id: str
    connection: str
    end_user: str | None
    action: str
    content_type: str
    filename: str | None
    size: int
    sha256: str
    created_at: datetime
    expires_at: datetime
    content: bytes = field(repr=False)

    def meta(self) -> dict[str, Any]:
        """What the call's result said of it (no bytes)."""
        return {"blob": self.id, "content_type": self.content_type, "size": self.size,
                "sha256": self.sha256, "filename": self.filename}


def _record(row: Any) -> StoredBlob:
    m = row._mapping
    return StoredBlob(id=m["id"], connection=m["connection"], end_user=m["end_user"],
                      action=m["action"], content_type=m["content_type"],
                      filename=m["filename"], size=m["size"], sha256=m["sha256"],
                      created_at=m["created_at"], expires_at=m["expires_at"],
                      content=bytes(m["content"]))


class BlobRepository:
    """Blobs in the store, each kept ``ttl`` after it is written. ``now`` is the clock
    (tests pass a fake one)."""

    def __init__(self, store: Store, *, ttl: timedelta = DEFAULT_BLOB_TTL,
                 now: Callable[[], datetime] = utcnow) -> None:
        if ttl <= timedelta(0):
            raise ValueError("a blob's lifetime must be positive")
        self._store = store
        self._ttl = ttl
        self._now = now

    async def put(self, blob: NewBlob) -> StoredBlob:
        """Keep ``blob`` (and delete a batch of expired ones while at it)."""
        now = self._now()
        stored = StoredBlob(
            id=blob.id, connection=blob.connection, end_user=blob.end_user,
            action=blob.action, content_type=blob.content_type, filename=blob.filename,
            size=len(blob.content), sha256=blob.sha256, created_at=now,
            expires_at=now + self._ttl, content=blob.content)
        expired = (select(_BLOBS.c.id).where(_BLOBS.c.expires_at <= now)
                   .limit(_PURGE_BATCH))
        with self._store._errors("keep a binary answer"):
            async with self._store.engine.begin() as conn:
                await conn.execute(delete(_BLOBS).where(_BLOBS.c.id.in_(expired)))
                await conn.execute(insert(_BLOBS).values(
                    id=stored.id, connection=stored.connection, end_user=stored.end_user,
                    action=stored.action, content_type=stored.content_type,
                    filename=stored.filename, size=stored.size, sha256=stored.sha256,
                    content=stored.content, created_at=stored.created_at,
                    expires_at=stored.expires_at))
        return stored

    async def get(self, blob_id: str, *, end_user: str | None,
                  connection: str | None = None) -> StoredBlob | None:
        """Blob ``blob_id`` unless it expired. ``end_user``: the end user asking — only
        blobs fetched through their connections are found; None is an operator, who finds
        any. ``connection``: only a blob fetched through that connection."""
        stmt = select(_BLOBS).where(_BLOBS.c.id == blob_id,
                                    _BLOBS.c.expires_at > self._now())
        if end_user is not None:
            stmt = stmt.where(_BLOBS.c.end_user == end_user)
        if connection is not None:
            stmt = stmt.where(_BLOBS.c.connection == connection)
        with self._store._errors("read a binary answer"):
            async with self._store.engine.connect() as conn:
                row = (await conn.execute(stmt)).first()
        return None if row is None else _record(row)

    async def purge_expired(self) -> int:
        """Delete every expired blob; how many."""
        with self._store._errors("delete expired binary answers"):
            async with self._store.engine.begin() as conn:
                result = await conn.execute(delete(_BLOBS).where(
                    _BLOBS.c.expires_at <= self._now()))
        return int(result.rowcount or 0)
