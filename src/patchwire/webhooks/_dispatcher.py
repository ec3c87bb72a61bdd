"""The dispatcher: undispatched events become one delivery per matching active
subscription, in one transaction with marking them dispatched. A crash before the commit
leaves the events undispatched, after it the deliveries exist: none is lost, none made
twice (deliveries are unique per subscription and event)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from patchwire.ids import new_id
from patchwire.store import Store
from patchwire.store.core import _SQLITE_IMMEDIATE
from patchwire.webhooks._delivery_tables import DELIVERIES, EVENTS, SUBS
from patchwire.webhooks._subscription_rules import compile_filter

__all__ = ["DISPATCH_BATCH", "dispatch_events"]

#: events dispatched per transaction
DISPATCH_BATCH = 1000


async def dispatch_events(store: Store, now: float, *, limit: int = DISPATCH_BATCH) -> int:
    """Turn up to ``limit`` undispatched events (oldest first) into deliveries for the
    active subscriptions whose filter takes them, and mark them dispatched — in one
    transaction. Returns how many events were taken (``limit``: there may be more)."""
    is_pg = store.dialect == "postgresql"
    pick = (select(EVENTS.c.id, EVENTS.c.type, EVENTS.c.created_at)
            .where(EVENTS.c.dispatched_at.is_(None))
            .order_by(EVENTS.c.created_at, EVENTS.c.id).limit(limit))
    if is_pg:
        # concurrent dispatchers take different events instead of waiting on each other
        pick = pick.with_for_update(skip_locked=True)
    with store._errors("dispatch events to webhook subscriptions"):
        async with store.engine.connect() as conn:
            # SQLite: take the write lock up front, so dispatchers in several processes
            # queue instead of failing to upgrade a read transaction
            conn = await conn.execution_options(**{_SQLITE_IMMEDIATE: True})
            async with conn.begin():
                events = (await conn.execute(pick)).all()
                if not events:
                    return 0
                subs = (await conn.execute(select(SUBS.c.id, SUBS.c.event_types).where(
                    SUBS.c.status == "active"))).all()
                filters = [(s.id, compile_filter(s.event_types or ())) for s in subs]
                rows = [
                    {"id": new_id(), "subscription_id": sub_id, "event_id": e.id,
                     "event_type": e.type, "event_created_at": e.created_at,
                     "status": "pending", "tries": 0, "attempts": 0,
                     "next_attempt_at": now, "last_status_code": None, "last_error": None,
                     "last_latency_ms": None, "created_at": now, "updated_at": now,
                     "delivered_at": None}
                    for e in events for sub_id, flt in filters if flt.fullmatch(e.type)
                ]
                if rows:
                    dialect = postgresql if is_pg else sqlite
                    # unique per (subscription, event): dispatching an event twice can
                    # never make a second delivery
                    stmt = dialect.insert(DELIVERIES).on_conflict_do_nothing(
                        index_elements=["subscription_id", "event_id"])
                    for i in range(0, len(rows), 2000):
                        await conn.execute(stmt, rows[i:i + 2000])
                await conn.execute(update(EVENTS).where(
                    EVENTS.c.id.in_([e.id for e in events])).values(dispatched_at=now))
    return len(events)
