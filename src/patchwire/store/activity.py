"""What the call log says of connections: when each last succeeded, and the class of its
last error — for a page of connections at once (two grouped queries whatever the page's
size, never one per connection)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, func, select

from patchwire.store.core import Store
from patchwire.store.models import CallRow

__all__ = ["ConnectionActivity", "connection_activity"]

_CALLS = cast(Table, CallRow.__table__)


@dataclass(frozen=True)
class ConnectionActivity:
    """One connection's last success and last error in the call log (None: never)."""

    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    #: the error's code (``auth_error``, ``upstream_error``, ``timeout``...)
    last_error_class: str | None = None


async def connection_activity(store: Store, names: Sequence[str]
                              ) -> dict[str, ConnectionActivity]:
    """The activity of connections ``names`` (those without calls are absent)."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    calls = _CALLS.c
    last_ok = (select(calls.connection, func.max(calls.started_at))
               .where(calls.connection.in_(names), calls.status == "ok")
               .group_by(calls.connection))
    errors = (select(calls.connection.label("connection"),
                     func.max(calls.started_at).label("at"))
              .where(calls.connection.in_(names), calls.status == "error")
              .group_by(calls.connection).subquery())
    # the class of each one's latest error: its row, found by the grouped maximum
    last_error = (select(calls.connection, calls.started_at, calls.error_class)
                  .join(errors, and_(calls.connection == errors.c.connection,
                                     calls.started_at == errors.c.at))
                  .where(calls.status == "error"))
    ok_at: dict[str, datetime] = {}
    failed: dict[str, tuple[datetime, str | None]] = {}
    with store._errors("read the connections' last calls"):
        async with store.engine.connect() as conn:
            for name, at in (await conn.execute(last_ok)).all():
                ok_at[name] = at
            for name, at, error_class in (await conn.execute(last_error)).all():
                failed[name] = (at, error_class)
    return {name: ConnectionActivity(ok_at.get(name), *failed.get(name, (None, None)))
            for name in names if name in ok_at or name in failed}
