"""Publishing events to the event log, which outbound webhooks deliver to subscribers.

Flows write their ``emit`` events and run events through the run journal; everything else
(syncs' ``record.created|updated|deleted``, ...) publishes here.
"""

from __future__ import annotations

import time
from typing import Any, cast

import orjson
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite

from patchwire.errors import ConfigError
from patchwire.ids import new_id
from patchwire.store import Store
from patchwire.store.models import EventRow
from patchwire.webhooks._wakeup import kick_workers

__all__ = ["EVENT_SOURCES", "publish"]

#: who publishes events: flow steps, run outcomes, syncs, connections' lifecycle
EVENT_SOURCES = ("flow", "run", "sync", "connection")

_EVENTS = cast(Table, EventRow.__table__)


async def publish(store: Store, type: str, data: Any, *, source: str,
                  run_id: str | None = None, event_id: str | None = None) -> str:
    """Record an event for delivery to the subscriptions whose filter takes ``type``;
    returns its id (the ``webhook-id`` subscribers see).

    Idempotent on ``event_id``: publishing the same id again records nothing more (the first
    one's type and data stay), so a sync that repeats a batch after a crash does not deliver
    twice. Without ``event_id`` a new one is made.
    """
    if not type or len(type) > 200:
        raise ConfigError("an event type must be 1-200 characters")
    if source not in EVENT_SOURCES:
        raise ConfigError(f"unknown event source {source!r} (one of {', '.join(EVENT_SOURCES)})")
    if event_id is not None and not 1 <= len(event_id) <= 64:
        raise ConfigError("an event id must be 1-64 characters")
    try:
        orjson.dumps(data)  # refuse what the JSON column could not hold, with a clear error
    except TypeError as exc:
        raise ConfigError(f"event data is not JSON-serialisable: {exc}") from None
    event_id = event_id or new_id()
    dialect = postgresql if store.dialect == "postgresql" else sqlite
    stmt = dialect.insert(_EVENTS).values(
        id=event_id, type=type, data=data, run_id=run_id, source=source,
        created_at=time.time(), dispatched_at=None).on_conflict_do_nothing(
        index_elements=["id"])
    with store._errors(f"publish event {type}"):
        async with store.engine.begin() as conn:
            await conn.execute(stmt)
    kick_workers(store)  # a delivery worker in this process picks it up now
    return event_id
