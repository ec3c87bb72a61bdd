"""Connect sessions: single-use links an end user opens to connect an account.

``create`` hands out a random token (32 bytes, urlsafe); only its SHA-256 is stored, as the
session's id, so a database leak yields no usable link. The link is
``{public_url}/connect/{token}``: built from the deployment's public URL, never from a
request's ``Host``, so it is right behind a reverse proxy and cannot be pointed elsewhere by
whoever sends the request.

A session is ``pending`` until an account is connected through it (``connected``), or
``expired`` once its time is up; it then answers :class:`~patchwire.ConnectSessionClosed`.
``wait`` is the long poll of a platform's backend: woken in-process when the session
changes here, and re-reading the store each second for a change made by another process.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from patchwire.errors import ConnectSessionClosed, UnknownConnection, UnknownConnectSession
from patchwire.ports import ConnectLink
from patchwire.runtime import Runtime
from patchwire.store import utcnow
from patchwire.store.connect import (
    CONNECTED,
    PENDING,
    ConnectSessionRecord,
    ConnectSessionRepository,
)
from patchwire.store.end_users import check_end_user

__all__ = [
    "DEFAULT_SESSION_TTL",
    "MAX_CONNECTORS",
    "MAX_RETURN_URL",
    "MAX_SESSION_TTL",
    "MAX_WAIT",
    "ConnectSession",
    "ConnectSessions",
    "check_return_url",
    "session_id",
]

DEFAULT_SESSION_TTL: Final = timedelta(minutes=30)
MAX_SESSION_TTL: Final = timedelta(days=7)
#: the longest a long poll waits (seconds)
MAX_WAIT: Final = 30.0
MAX_CONNECTORS: Final = 20
MAX_RETURN_URL: Final = 2000
MAX_LABEL: Final = 100
#: a change another process made is seen within this many seconds by a waiting poll
POLL_INTERVAL: Final = 1.0

_TOKEN: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")

#: the polls waiting on each session in this process, woken when it changes here
_WAITERS: dict[str, set[asyncio.Event]] = {}


def session_id(token: str) -> str | None:
    """The stored id of a link's token (its SHA-256), None when it is not one's shape."""
    if not isinstance(token, str) or not _TOKEN.match(token):
        return None
    return hashlib.sha256(token.encode()).hexdigest()


def check_return_url(url: str) -> str:
    """``url`` when it is an absolute http(s) URL a browser may be sent back to; ValueError
    otherwise (``javascript:``, ``data:``, relative, with a user or password, control
    characters, longer than 2000 characters)."""
    if not isinstance(url, str) or not url or len(url) > MAX_RETURN_URL:
        raise ValueError(f"return_url must be 1 to {MAX_RETURN_URL} characters")
    if any(ord(c) < 33 or ord(c) == 127 or unicodedata.category(c) in ("Cf", "Zl", "Zp")
           for c in url):
        raise ValueError("return_url cannot contain blanks or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed only to refuse a bad one
    except ValueError:
        raise ValueError("return_url is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("return_url must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("return_url cannot carry a user name or password")
    return url


def _check_label(label: str | None) -> str | None:
    if label is None:
        return None
    if not label or len(label) > MAX_LABEL or label != label.strip() or any(
            unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in label):
        raise ValueError(f"a label must be 1 to {MAX_LABEL} characters on one line")
    return label


@dataclass(frozen=True)
class ConnectSession:
    """A connect session as reported (``GET /api/v1/connect-sessions/{token}``)."""

    status: str
    end_user: str
    connectors: tuple[str, ...]
    expires_at: datetime
    connection: str | None = None
    return_url: str | None = None
    label: str | None = None

    @classmethod
    def of(cls, rec: ConnectSessionRecord, now: datetime) -> ConnectSession:
        return cls(rec.state(now), rec.end_user, rec.connectors, rec.expires_at,
                   rec.connection, rec.return_url, rec.label)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "end_user": self.end_user,
                "connectors": list(self.connectors), "connection": self.connection,
                "expires_at": self.expires_at.isoformat(), "label": self.label}


class ConnectSessions:
    """Connect sessions of a deployment (its store and public URL); meets
    :class:`patchwire.ports.ConnectLinks`. ``clock``: now, as an aware UTC datetime (a fake
    one in tests)."""

    def __init__(self, runtime: Runtime, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._runtime = runtime
        self.clock = clock

    def _repo(self) -> ConnectSessionRepository:
        return ConnectSessionRepository(self._runtime.store)

    def url_of(self, token: str) -> str:
        return f"{self._runtime.settings.effective_public_url}/connect/{token}"

    async def create(self, end_user: str, connectors: Sequence[str], *,
                     return_url: str | None = None, connection: str | None = None,
                     label: str | None = None, ttl: timedelta = DEFAULT_SESSION_TTL,
                     ) -> tuple[ConnectSession, str]:
        """A new link for ``end_user`` to connect one of ``connectors`` (``connection``: to
        re-connect that connection of theirs; ``connectors`` may then be empty). Returns
        the session and its token, which is not kept. ValueError for an unusable value;
        UnknownConnector; UnknownConnection when ``connection`` is not the end user's."""
        check_end_user(end_user)
        names = list(dict.fromkeys(connectors))
        if connection is not None:
            try:
                rec = await self._runtime.store.get_connection(connection)
            except UnknownConnection:
                rec = None
            if rec is None or rec.end_user != end_user:
                # another end user's connection does not exist for this one
                raise UnknownConnection(f"end user {end_user!r} has no connection named "
                                        f"{connection!r}")
            if names and names != [rec.connector]:
                raise ValueError(f"connection {connection!r} is a {rec.connector} "
                                 "connection: a reconnect link offers that connector only")
            names = [rec.connector]
        if not names or len(names) > MAX_CONNECTORS:
            raise ValueError(f"a connect link offers 1 to {MAX_CONNECTORS} connectors")
        for name in names:
            self._runtime.connectors.get(name)  # UnknownConnector names it
        if return_url is not None:
            check_return_url(return_url)
        if not timedelta(seconds=1) <= ttl <= MAX_SESSION_TTL:
            raise ValueError(f"a connect link lives 1 second to {MAX_SESSION_TTL.days} days")
        token = secrets.token_urlsafe(32)
        now = self.clock()
        digest = session_id(token)
        assert digest is not None  # token_urlsafe(32) is always 43 characters
        rec_ = ConnectSessionRecord(
            id=digest, end_user=end_user, connectors=tuple(names), status=PENDING,
            created_at=now, expires_at=now + ttl, return_url=return_url,
            connection=connection, label=_check_label(label))
        await self._repo().add(rec_)
        return ConnectSession.of(rec_, now), token

    async def link(self, end_user: str, connectors: Sequence[str], *,
                   connection: str | None = None,
                   return_url: str | None = None) -> ConnectLink:
        """:class:`patchwire.ports.ConnectLinks`: a fresh link, with its URL."""
        session, token = await self.create(end_user, connectors, connection=connection,
                                           return_url=return_url)
        return ConnectLink(token=token, url=self.url_of(token), expires_at=session.expires_at)

    async def record(self, token: str) -> ConnectSessionRecord:
        """The stored session of ``token``; UnknownConnectSession."""
        digest = session_id(token)
        found = await self._repo().get(digest) if digest is not None else None
        if found is None:
            raise UnknownConnectSession("no connect link with this token")
        return found

    async def open_record(self, token: str) -> ConnectSessionRecord:
        """The session of ``token`` while it can still be used; ConnectSessionClosed once
        used or expired."""
        found = await self.record(token)
        closed_because(found, self.clock())
        return found

    async def get(self, token: str) -> ConnectSession:
        return ConnectSession.of(await self.record(token), self.clock())

    async def wait(self, token: str, seconds: float, *,
                   end_user: str | None = None) -> ConnectSession:
        """The session once it is no longer pending, or as it is after ``seconds`` (at
        most :data:`MAX_WAIT`; 0: as it is now). ``end_user``: only theirs (another's is
        unknown)."""
        deadline = time.monotonic() + max(0.0, min(seconds, MAX_WAIT))
        digest = session_id(token)
        while True:
            rec = await self.record(token)
            if end_user is not None and rec.end_user != end_user:
                raise UnknownConnectSession("no connect link with this token")
            session = ConnectSession.of(rec, self.clock())
            left = deadline - time.monotonic()
            if session.status != PENDING or left <= 0 or digest is None:
                return session
            woken = asyncio.Event()
            _WAITERS.setdefault(digest, set()).add(woken)
            try:
                # woken by a change made here; else look again (another process's change)
                # after a second, or at the deadline, whichever comes first
                async with asyncio.timeout(min(POLL_INTERVAL, left)):
                    await woken.wait()
            except TimeoutError:
                pass
            finally:
                waiting = _WAITERS.get(digest)
                if waiting is not None:
                    waiting.discard(woken)
                    if not waiting:
                        _WAITERS.pop(digest, None)

    async def finish(self, rec: ConnectSessionRecord, connection: str) -> bool:
        """Mark the session connected through ``connection`` and wake its polls; False
        when it was no longer pending (used meanwhile, or expired)."""
        done = await self._repo().finish(rec.id, connection=connection, now=self.clock())
        notify(rec.id)
        return done


def notify(digest: str) -> None:
    """Wake the polls of session ``digest`` in this process."""
    for woken in _WAITERS.get(digest, ()):
        woken.set()


def closed_because(rec: ConnectSessionRecord, now: datetime) -> None:
    """Raise ConnectSessionClosed when ``rec`` can no longer be used."""
    state = rec.state(now)
    if state == CONNECTED:
        raise ConnectSessionClosed("this connect link was already used: ask the chat for "
                                   "a new one")
    if state != PENDING:
        raise ConnectSessionClosed("this connect link has expired: ask the chat for a new "
                                   "one")
