"""Connect sessions and OAuth apps in the store (``connect_sessions``, ``oauth_apps``): the
SQL under ``patchwire.connect``, which adds the vault, the connectors and the flow.

A connect session is a single-use link (``/connect/{token}``): its row's id is the SHA-256
of the token, which is not kept. Its state moves once, ``pending`` → ``connected``, by a
conditional UPDATE, so two processes finishing the same link cannot both win; an OAuth2
authorization in flight is taken (its state digest cleared) the same way, so a callback
replayed with the same ``state`` finds nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Table, delete, insert, select, update

from patchwire.store._end_user_models import ConnectSessionRow, OAuthAppRow
from patchwire.store.core import Store
from patchwire.store.records import utcnow

__all__ = [
    "CONNECTED",
    "EXPIRED",
    "PENDING",
    "ConnectSessionRecord",
    "ConnectSessionRepository",
    "OAuthAppRecord",
    "OAuthAppRepository",
]

PENDING: Final = "pending"
CONNECTED: Final = "connected"
#: never stored: a pending session past its ``expires_at``
EXPIRED: Final = "expired"

_SESSIONS = cast(Table, ConnectSessionRow.__table__)
_APPS = cast(Table, OAuthAppRow.__table__)


@dataclass(frozen=True)
class ConnectSessionRecord:
    """A connect session as stored. ``code_verifier`` is a vault token (sealed)."""

    id: str
    end_user: str
    connectors: tuple[str, ...]
    status: str
    created_at: datetime
    expires_at: datetime
    return_url: str | None = None
    connection: str | None = None
    label: str | None = None
    finished_at: datetime | None = None
    oauth_connector: str | None = None
    oauth_state: str | None = None
    code_verifier: str | None = field(default=None, repr=False)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def state(self, now: datetime) -> str:
        """``pending``, ``connected`` or ``expired`` (a pending one past its time)."""
        if self.status == PENDING and now >= self.expires_at:
            return EXPIRED
        return self.status


def _session(row: Any) -> ConnectSessionRecord:
    m = row._mapping
    return ConnectSessionRecord(
        id=m["id"], end_user=m["end_user"], connectors=tuple(m["connectors"] or ()),
        status=m["status"], created_at=m["created_at"], expires_at=m["expires_at"],
        return_url=m["return_url"], connection=m["connection"], label=m["label"],
        finished_at=m["finished_at"], oauth_connector=m["oauth_connector"],
        oauth_state=m["oauth_state"], code_verifier=m["code_verifier"], error=m["error"],
        extra=dict(m["extra"] or {}))


class ConnectSessionRepository:
    """Connect sessions in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, rec: ConnectSessionRecord) -> None:
        values = dataclasses.asdict(rec)
        values["connectors"] = list(rec.connectors)
        values["extra"] = rec.extra or None
        with self._store._errors("create a connect session"):
            async with self._store.engine.begin() as conn:
                await conn.execute(insert(_SESSIONS).values(**values))

    async def get(self, session_id: str) -> ConnectSessionRecord | None:
        return await self._one(_SESSIONS.c.id == session_id, "read a connect session")

    async def by_oauth_state(self, state_digest: str) -> ConnectSessionRecord | None:
        return await self._one(_SESSIONS.c.oauth_state == state_digest,
                               "read a connect session")

    async def _one(self, where: Any, what: str) -> ConnectSessionRecord | None:
        with self._store._errors(what):
            async with self._store.engine.connect() as conn:
                row = (await conn.execute(select(_SESSIONS).where(where))).first()
        return None if row is None else _session(row)

    async def begin_oauth(self, session_id: str, *, connector: str, state_digest: str,
                          code_verifier: str | None, extra: dict[str, Any],
                          now: datetime) -> bool:
        """Note the authorization now in flight (replacing any earlier one: the person
        may click again); False unless the session is pending and unexpired."""
        with self._store._errors("start an authorization"):
            async with self._store.engine.begin() as conn:
                result = await conn.execute(update(_SESSIONS).where(
                    _SESSIONS.c.id == session_id, _SESSIONS.c.status == PENDING,
                    _SESSIONS.c.expires_at > now).values(
                    oauth_connector=connector, oauth_state=state_digest,
                    code_verifier=code_verifier, extra=extra or None, error=None))
        return bool(result.rowcount)

    async def take_oauth(self, session_id: str, state_digest: str) -> bool:
        """Take the authorization in flight (its state can be used once): True for the
        one caller that cleared it."""
        with self._store._errors("finish an authorization"):
            async with self._store.engine.begin() as conn:
                result = await conn.execute(update(_SESSIONS).where(
                    _SESSIONS.c.id == session_id,
                    _SESSIONS.c.oauth_state == state_digest).values(
                    oauth_state=None, code_verifier=None))
        return bool(result.rowcount)

    async def finish(self, session_id: str, *, connection: str, now: datetime) -> bool:
        """Mark the session connected through ``connection``: True for the one caller that
        moved it from pending (within its time)."""
        with self._store._errors("finish a connect session"):
            async with self._store.engine.begin() as conn:
                result = await conn.execute(update(_SESSIONS).where(
                    _SESSIONS.c.id == session_id, _SESSIONS.c.status == PENDING,
                    _SESSIONS.c.expires_at > now).values(
                    status=CONNECTED, connection=connection, finished_at=now,
                    oauth_state=None, code_verifier=None, error=None))
        return bool(result.rowcount)

    async def note_error(self, session_id: str, error: str) -> None:
        """The last failure, as shown on the page (no secret in it)."""
        with self._store._errors("note a connect session's error"):
            async with self._store.engine.begin() as conn:
                await conn.execute(update(_SESSIONS).where(
                    _SESSIONS.c.id == session_id).values(error=error[:1000]))


@dataclass(frozen=True)
class OAuthAppRecord:
    """A deployment's OAuth2 client for one connector. ``client_secret`` is a vault token
    (sealed); ``to_dict`` leaves it out."""

    connector: str
    client_id: str
    scopes: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    client_secret: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"connector": self.connector, "client_id": self.client_id,
                "scopes": list(self.scopes), "client_secret_set": bool(self.client_secret),
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


def _app(row: Any) -> OAuthAppRecord:
    m = row._mapping
    return OAuthAppRecord(connector=m["connector"], client_id=m["client_id"],
                          scopes=tuple(m["scopes"] or ()), created_at=m["created_at"],
                          updated_at=m["updated_at"], client_secret=m["client_secret"])


class OAuthAppRepository:
    """OAuth apps in the store (``oauth_apps``), one per connector."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def put(self, connector: str, *, client_id: str, client_secret: str,
                  scopes: Sequence[str]) -> OAuthAppRecord:
        """Create or replace the app of ``connector`` (``client_secret``: sealed)."""
        now = utcnow()
        values = {"client_id": client_id, "client_secret": client_secret,
                  "scopes": list(scopes), "updated_at": now}
        with self._store._errors(f"save the OAuth app of {connector!r}"):
            async with self._store.engine.begin() as conn:
                # UPDATE first: it takes SQLite's write lock before anything is read
                result = await conn.execute(update(_APPS).where(
                    _APPS.c.connector == connector).values(**values))
                if not result.rowcount:
                    await conn.execute(insert(_APPS).values(connector=connector,
                                                            created_at=now, **values))
                row = (await conn.execute(select(_APPS).where(
                    _APPS.c.connector == connector))).first()
        assert row is not None  # written in this transaction
        return _app(row)

    async def get(self, connector: str) -> OAuthAppRecord | None:
        with self._store._errors(f"read the OAuth app of {connector!r}"):
            async with self._store.engine.connect() as conn:
                row = (await conn.execute(select(_APPS).where(
                    _APPS.c.connector == connector))).first()
        return None if row is None else _app(row)

    async def list(self) -> list[OAuthAppRecord]:
        with self._store._errors("list OAuth apps"):
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(select(_APPS).order_by(_APPS.c.connector))).all()
        return [_app(r) for r in rows]

    async def remove(self, connector: str) -> bool:
        with self._store._errors(f"remove the OAuth app of {connector!r}"):
            async with self._store.engine.begin() as conn:
                result = await conn.execute(delete(_APPS).where(
                    _APPS.c.connector == connector))
        return bool(result.rowcount)
