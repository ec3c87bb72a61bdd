"""Incremental sync: upstream records copied into the store, kept current, queryable.

A sync definition (``syncs/*.yaml``, see :mod:`patchwire.sync.spec`) polls a list action
on a schedule — incrementally, by updated-since watermark or resumed cursor — and upserts
the records per (model, connection) with change detection, emitting ``record.created``,
``record.updated`` and ``record.deleted`` events. Reconciliation (a periodic full listing)
finds deletes; inbound webhooks update records in real time. Records are read with
``patchwire records``, ``/api/v1/records`` and a read-only search tool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from patchwire.sync.spec import (
    SyncRegistry,
    SyncSpec,
    UnknownSync,
    builtin_sync_texts,
    load_sync_file,
    load_sync_text,
)

if TYPE_CHECKING:
    from patchwire.sync._engine import SyncEngine, SyncHost, SyncOutcome, SyncStatus
    from patchwire.sync._records import RecordStore, SyncRecord, content_hash

#: the engine pulls in the call path, the records the store; `patchwire sync list` needs
#: only the format
_ENGINE_NAMES = frozenset({"SyncEngine", "SyncHost", "SyncOutcome", "SyncStatus"})
_RECORD_NAMES = frozenset({"RecordStore", "SyncRecord", "content_hash"})


def __getattr__(name: str) -> Any:
    if name in _ENGINE_NAMES:
        from patchwire.sync import _engine

        return getattr(_engine, name)
    if name in _RECORD_NAMES:
        from patchwire.sync import _records

        return getattr(_records, name)
    raise AttributeError(f"module 'patchwire.sync' has no attribute {name!r}")


__all__ = [
    "RecordStore",
    "SyncEngine",
    "SyncHost",
    "SyncOutcome",
    "SyncRecord",
    "SyncRegistry",
    "SyncSpec",
    "SyncStatus",
    "UnknownSync",
    "builtin_sync_texts",
    "content_hash",
    "load_sync_file",
    "load_sync_text",
]
