"""API keys in the store (``api_keys``): their shape, their scopes and their repository,
which ``patchwire keys``, ``/api/v1/keys`` and the server's key check all use.

Keys look like ``pwk_<id>_<secret>``: ``id`` (12 hex characters) is public and names the
row; ``secret`` is 32 random bytes (urlsafe base64). Only the SHA-256 digest of the secret
is stored. Why not scrypt/argon2: a slow hash protects *guessable* secrets (passwords) from
offline guessing after a database leak; a 256-bit random secret cannot be guessed however
fast the hash is, so a deliberately slow one would only add ~50 ms of CPU per request and
hand attackers a way to exhaust the server. This is how high-entropy API tokens are
usually stored. The digest is compared in constant time (:func:`secret_matches`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import Table, insert, select, update

from patchwire.errors import UnknownApiKey
from patchwire.store._key_models import ApiKeyRow
from patchwire.store.core import Store
from patchwire.store.records import utcnow

__all__ = [
    "KEY_PREFIX",
    "MAX_KEY_NAME",
    "SCOPES",
    "ApiKeyRecord",
    "KeyRepository",
    "ScopeName",
    "check_key_name",
    "check_scopes",
    "new_key",
    "parse_key",
    "secret_matches",
]

#: ``connect``: hand out end-user tokens and connect links (a platform's backend)
ScopeName = Literal["read", "run", "approve", "connect", "admin"]
SCOPES: Final[tuple[ScopeName, ...]] = ("read", "run", "approve", "connect", "admin")
KEY_PREFIX: Final = "pwk_"
#: the longest name a key may have (the column's width)
MAX_KEY_NAME = 200

_KEYS = cast(Table, ApiKeyRow.__table__)
_KEY_SHAPE = re.compile(r"^pwk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A fresh key: (id, secret, the full ``pwk_<id>_<secret>`` text)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)  # 32 random bytes: 43 characters
    return key_id, secret, f"{KEY_PREFIX}{key_id}_{secret}"


def parse_key(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    match = _KEY_SHAPE.match(text.strip())
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as stored, without its secret (``secret_hash`` never leaves the key
    check: ``to_dict`` leaves it out)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    secret_hash: str = field(default="", repr=False)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["secret_hash"]
        d["scopes"] = list(self.scopes)
        d["prefix"] = f"{KEY_PREFIX}{self.id}_"
        for k in ("created_at", "last_used_at", "revoked_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        return d


def secret_matches(record: ApiKeyRecord, secret: str) -> bool:
    """Whether ``secret`` is the record's, compared in constant time."""
    return hmac.compare_digest(_digest(secret), record.secret_hash)


def _record(row: Any) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(id=m["id"], name=m["name"], scopes=tuple(m["scopes"] or ()),
                        created_at=m["created_at"], last_used_at=m["last_used_at"],
                        revoked_at=m["revoked_at"], secret_hash=m["secret_hash"])


def check_scopes(scopes: Iterable[str]) -> tuple[ScopeName, ...]:
    """The scopes, deduplicated in canonical order; ValueError names an unknown one."""
    given = set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}: use {', '.join(SCOPES)}")
    if not given:
        raise ValueError(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return tuple(s for s in SCOPES if s in given)


def check_key_name(name: str) -> str:
    """The name without surrounding blanks; ValueError unless that is 1 to 200 characters
    with no control character (a NUL cannot be stored in PostgreSQL text; line breaks
    would forge lines where the name is printed)."""
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_KEY_NAME:
        raise ValueError(f"a key's name must be 1 to {MAX_KEY_NAME} characters")
    if any(unicodedata.category(c) == "Cc" for c in stripped):
        raise ValueError("a key's name cannot contain control characters")
    return stripped


class KeyRepository:
    """API keys in the store (``api_keys``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, name: str, scopes: Iterable[str]) -> tuple[ApiKeyRecord, str]:
        """A new key; returns its record and the full key text, which is not kept.
        ValueError for an unacceptable name or scope (:func:`check_key_name`,
        :func:`check_scopes`)."""
        checked = check_scopes(scopes)
        key_id, secret, text = new_key()
        rec = ApiKeyRecord(id=key_id, name=check_key_name(name), scopes=checked,
                           created_at=utcnow(), secret_hash=_digest(secret))
        with self._store._errors("create an API key"):
            async with self._store.engine.begin() as conn:
                await conn.execute(insert(_KEYS).values(
                    id=rec.id, name=rec.name, scopes=list(rec.scopes),
                    secret_hash=rec.secret_hash, created_at=rec.created_at))
        return rec, text

    async def list(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        stmt = select(_KEYS).order_by(_KEYS.c.created_at, _KEYS.c.id)
        if not include_revoked:
            stmt = stmt.where(_KEYS.c.revoked_at.is_(None))
        with self._store._errors("list API keys"):
            async with self._store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [_record(r) for r in rows]

    async def get(self, key_id: str) -> ApiKeyRecord:
        with self._store._errors(f"read API key {key_id!r}"):
            async with self._store.engine.connect() as conn:
                row = (await conn.execute(select(_KEYS).where(_KEYS.c.id == key_id))).first()
        if row is None:
            raise UnknownApiKey(f"no API key with id {key_id!r} (see `patchwire keys list`)")
        return _record(row)

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key (idempotent: a revoked key stays revoked at its first time)."""
        key_id = key_id.removeprefix(KEY_PREFIX).split("_")[0]  # "pwk_<id>_" works too
        with self._store._errors(f"revoke API key {key_id!r}"):
            async with self._store.engine.begin() as conn:
                await conn.execute(update(_KEYS).where(
                    _KEYS.c.id == key_id, _KEYS.c.revoked_at.is_(None)).values(
                    revoked_at=utcnow()))
        return await self.get(key_id)

    async def touch(self, key_id: str, when: datetime) -> None:
        with self._store._errors("note an API key's use"):
            async with self._store.engine.begin() as conn:
                await conn.execute(update(_KEYS).where(_KEYS.c.id == key_id).values(
                    last_used_at=when))

    async def has_admin_key(self) -> bool:
        return any(k.allows("admin") for k in await self.list())
