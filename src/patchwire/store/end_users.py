"""End users in the store: their tokens (``end_user_tokens``).

An **end user** is the chatbot platform's own user id (``u1``, ``user:123``). A platform's
backend, holding an API key, asks for a short-lived token for one end user
(``POST /api/v1/end-users/{end_user}/tokens``) and hands it to whatever acts for that
person — the model's MCP client, the chat backend's tool calls. A request carrying one
sees and acts on that end user's connections, tool calls, runs and approvals only.

Tokens look like ``pwu_<id>_<secret>``, shaped and stored like API keys
(``store/keys.py``: only the SHA-256 of the secret is kept, compared in constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Table, insert, select, update

from patchwire.errors import UnknownEndUserToken
from patchwire.store._end_user_models import EndUserTokenRow
from patchwire.store.core import Store
from patchwire.store.records import utcnow

__all__ = [
    "DEFAULT_TOKEN_TTL",
    "END_USER_TOKEN_PREFIX",
    "MAX_END_USER",
    "MAX_TOKEN_TTL",
    "EndUserToken",
    "EndUserTokenRepository",
    "check_end_user",
    "parse_end_user_token",
]

END_USER_TOKEN_PREFIX: Final = "pwu_"
#: the longest end-user id (the columns' width)
MAX_END_USER: Final = 200
#: how long a token lives unless asked otherwise, and the longest it may
DEFAULT_TOKEN_TTL: Final = timedelta(hours=1)
MAX_TOKEN_TTL: Final = timedelta(days=7)

_TOKENS = cast(Table, EndUserTokenRow.__table__)
_SHAPE = re.compile(r"^pwu_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_end_user(end_user: str) -> str:
    """The end-user id as given; ValueError unless it is 1 to 200 characters with no
    control character and no surrounding blank (ids are compared exactly: ``u1`` and
    ``u1 `` would be two people)."""
    if not isinstance(end_user, str) or not end_user or len(end_user) > MAX_END_USER:
        raise ValueError(f"an end user's id must be 1 to {MAX_END_USER} characters")
    if end_user != end_user.strip():
        raise ValueError("an end user's id cannot start or end with a blank")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in end_user):
        raise ValueError("an end user's id cannot contain control characters")
    return end_user


def parse_end_user_token(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed end-user token, else None."""
    match = _SHAPE.match(text.strip())
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True)
class EndUserToken:
    """An end-user token as stored, without its secret."""

    id: str
    end_user: str
    created_at: datetime
    expires_at: datetime
    created_by: str | None = None
    revoked_at: datetime | None = None
    secret_hash: str = field(default="", repr=False)

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def matches(self, secret: str) -> bool:
        """Whether ``secret`` is this token's, compared in constant time."""
        return hmac.compare_digest(_digest(secret), self.secret_hash)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "end_user": self.end_user,
                "created_at": self.created_at.isoformat(),
                "expires_at": self.expires_at.isoformat(),
                "created_by": self.created_by,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "prefix": f"{END_USER_TOKEN_PREFIX}{self.id}_"}


def _record(row: Any) -> EndUserToken:
    m = row._mapping
    return EndUserToken(id=m["id"], end_user=m["end_user"], created_at=m["created_at"],
                        expires_at=m["expires_at"], created_by=m["created_by"],
                        revoked_at=m["revoked_at"], secret_hash=m["secret_hash"])


class EndUserTokenRepository:
    """End-user tokens in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, end_user: str, *, ttl: timedelta = DEFAULT_TOKEN_TTL,
                     created_by: str | None = None) -> tuple[EndUserToken, str]:
        """A new token for ``end_user``, valid for ``ttl``; returns its record and the full
        token text, which is not kept. ValueError for a bad id or lifetime."""
        check_end_user(end_user)
        if not timedelta(seconds=1) <= ttl <= MAX_TOKEN_TTL:
            raise ValueError(f"a token lives 1 second to {MAX_TOKEN_TTL.days} days")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = utcnow()
        rec = EndUserToken(id=token_id, end_user=end_user, created_at=now,
                           expires_at=now + ttl, created_by=created_by,
                           secret_hash=_digest(secret))
        with self._store._errors("create an end-user token"):
            async with self._store.engine.begin() as conn:
                await conn.execute(insert(_TOKENS).values(
                    id=rec.id, end_user=rec.end_user, secret_hash=rec.secret_hash,
                    created_by=rec.created_by, created_at=rec.created_at,
                    expires_at=rec.expires_at))
        return rec, f"{END_USER_TOKEN_PREFIX}{token_id}_{secret}"

    async def find(self, token_id: str) -> EndUserToken | None:
        with self._store._errors("read an end-user token"):
            async with self._store.engine.connect() as conn:
                row = (await conn.execute(select(_TOKENS).where(
                    _TOKENS.c.id == token_id))).first()
        return None if row is None else _record(row)

    async def verify(self, text: str) -> EndUserToken | None:
        """The active token ``text`` is, or None (malformed, unknown, expired, revoked,
        wrong secret)."""
        parsed = parse_end_user_token(text)
        if parsed is None:
            return None
        found = await self.find(parsed[0])
        if found is None or not found.matches(parsed[1]) or not found.active(utcnow()):
            return None
        return found

    async def list(self, end_user: str, *, include_inactive: bool = False
                   ) -> list[EndUserToken]:
        stmt = select(_TOKENS).where(_TOKENS.c.end_user == end_user).order_by(
            _TOKENS.c.created_at, _TOKENS.c.id)
        with self._store._errors("list end-user tokens"):
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        now = utcnow()
        found = [_record(r) for r in rows]
        return found if include_inactive else [t for t in found if t.active(now)]

    async def revoke(self, end_user: str, token_id: str) -> EndUserToken:
        """Revoke one of ``end_user``'s tokens (idempotent). UnknownEndUserToken when it is
        not theirs."""
        token_id = token_id.removeprefix(END_USER_TOKEN_PREFIX).split("_")[0]
        with self._store._errors("revoke an end-user token"):
            async with self._store.engine.begin() as conn:
                await conn.execute(update(_TOKENS).where(
                    _TOKENS.c.id == token_id, _TOKENS.c.end_user == end_user,
                    _TOKENS.c.revoked_at.is_(None)).values(revoked_at=utcnow()))
        found = await self.find(token_id)
        if found is None or found.end_user != end_user:
            raise UnknownEndUserToken(f"end user {end_user!r} has no token {token_id!r}")
        return found

    async def revoke_all(self, end_user: str) -> int:
        """Revoke every active token of ``end_user``; returns how many."""
        with self._store._errors("revoke end-user tokens"):
            async with self._store.engine.begin() as conn:
                result = await conn.execute(update(_TOKENS).where(
                    _TOKENS.c.end_user == end_user, _TOKENS.c.revoked_at.is_(None)).values(
                    revoked_at=utcnow()))
        return int(result.rowcount or 0)
