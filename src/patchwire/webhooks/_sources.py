"""Webhook sources: who may post to ``/hooks/{name}``, and how their events are verified.

A source holds a verification scheme (``SchemeSettings``), one or more signing secrets,
JSONata paths that find an event's id (the dedupe key) and type, a body size limit and an
enabled flag. Secrets are encrypted with the credential vault, bound to the source's row
(``source_aad``), and never leave this module except to the verifier: listings and APIs
show how many secrets there are and when they expire, not their values.

Rotation: ``rotate`` adds a new secret and gives the others an expiry (a grace period,
default a day) so a sender switching over is accepted with either; expired secrets are
dropped at the next rotation and ignored by the receiver meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sqlalchemy import Row, RowMapping, Table, delete, select, update
from sqlalchemy.exc import IntegrityError

from patchwire.errors import (  # noqa: F401 (re-exported)
    ConfigError,
    LookupFailed,
    PatchwireError,
    UnknownWebhookSource,
    WebhookSourceExists,
)
from patchwire.expressions import Expression, ExpressionError, compile_expression
from patchwire.ids import new_id
from patchwire.ports import HasStore, HasVault
from patchwire.store import WebhookSourceRow
from patchwire.webhooks._schemes import SchemeSettings
from patchwire.webhooks._schemes import _key as scheme_key

__all__ = [
    "DEFAULT_GRACE_S",
    "DEFAULT_MAX_BODY_BYTES",
    "LoadedSource",
    "SourceCache",
    "SourceSecret",
    "SourcesHost",
    "UnknownWebhookSource",
    "WebhookSource",
    "WebhookSourceExists",
    "WebhookSources",
    "source_aad",
]

DEFAULT_MAX_BODY_BYTES = 1 << 20
#: how long the older secrets stay valid after a rotation
DEFAULT_GRACE_S = 86_400.0
#: the longest grace period a rotation may give the older secrets: a year (an unbounded one
#: stored an expiry past what a timestamp can hold, and the source could not be read back)
MAX_GRACE_S = 365 * 86_400.0
#: a source name is a URL path segment: no escaping needed anywhere it appears
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
#: a ceiling on the configured body limit (the receiver holds a body in memory)
_MAX_BODY_CEILING = 64 << 20

_SOURCES = cast(Table, WebhookSourceRow.__table__)

log = logging.getLogger("patchwire.webhooks")



def source_aad(source_id: str) -> bytes:
    """The associated data binding a source's secrets to its row (see ``auth/vault.py``)."""
    return f"webhook_source:{source_id}".encode()


@dataclass(frozen=True, slots=True)
class SourceSecret:
    """One signing secret; ``expires_at`` (epoch seconds) once a newer one replaced it."""

    value: str = field(repr=False)
    added_at: float
    expires_at: float | None = None

    def active(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True)
class WebhookSource:
    """A source as shown to people and APIs: no secret values."""

    id: str
    name: str
    scheme: SchemeSettings
    event_id_path: str | None
    event_type_path: str | None
    max_body_bytes: int
    enabled: bool
    created_at: float
    updated_at: float
    #: (added_at, expires_at) of each secret, newest first
    secrets: tuple[tuple[float, float | None], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scheme": (self.scheme.model_dump(mode="json", exclude_none=True)
                       if self.scheme.scheme == "hmac" else
                       {"scheme": self.scheme.scheme, "tolerance_s": self.scheme.tolerance_s}),
            "event_id_path": self.event_id_path,
            "event_type_path": self.event_type_path,
            "max_body_bytes": self.max_body_bytes,
            "enabled": self.enabled,
            "secrets": [{"added_at": _iso(a), "expires_at": _iso(e)} for a, e in self.secrets],
            "url_path": f"/hooks/{self.name}",
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True)
class LoadedSource:
    """What the receiver needs of a source, secrets decrypted, expressions compiled."""

    name: str
    scheme: SchemeSettings
    secrets: tuple[SourceSecret, ...] = field(repr=False)
    event_id: Expression | None
    event_type: Expression | None
    max_body_bytes: int
    enabled: bool

    def active_secrets(self, now: float) -> list[str]:
        return [s.value for s in self.secrets if s.active(now)]


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"invalid source name {name[:100]!r}: use 1-100 letters, digits, "
                          "'_', '-' or '.', starting with a letter or digit")
    return name


def _check_expression(what: str, source: str | None) -> str | None:
    if source is None or not source.strip():
        return None
    try:
        compile_expression(source)
    except ExpressionError as exc:
        raise ConfigError(f"the {what} expression is invalid: {exc}") from None
    return source


def _check_secret(secret: str, scheme: SchemeSettings) -> str:
    secret = secret.strip()
    if not secret:
        raise ConfigError("a webhook secret cannot be empty")
    if scheme_key(scheme.scheme, secret) is None:  # e.g. not base64 for Standard Webhooks
        raise ConfigError(f"the secret is not usable for scheme {scheme.scheme!r}"
                          + (" (expected whsec_ followed by base64)"
                             if scheme.scheme == "standard" else ""))
    return secret


class SourcesHost(HasStore, HasVault, Protocol):
    """Where sources live: the store, and the vault sealing their secrets (the runtime or
    the facade, opened)."""


class WebhookSources:
    """Sources in the store, their secrets sealed by the vault."""

    def __init__(self, host: SourcesHost) -> None:
        self._host = host

    # -- secrets ---------------------------------------------------------------------------

    def _seal(self, source_id: str, secrets: Sequence[SourceSecret]) -> str:
        doc = {"secrets": [{"value": s.value, "added_at": s.added_at,
                            "expires_at": s.expires_at} for s in secrets]}
        return self._host.vault.encrypt_json(doc, aad=source_aad(source_id))

    def _open(self, source_id: str, token: str) -> tuple[SourceSecret, ...]:
        doc = self._host.vault.decrypt_json(token, aad=source_aad(source_id))
        return tuple(SourceSecret(str(s["value"]), float(s["added_at"]),
                                  None if s.get("expires_at") is None
                                  else float(s["expires_at"]))
                     for s in doc.get("secrets", []))

    def _record(self, m: Mapping[str, Any] | RowMapping) -> WebhookSource:
        secrets = self._open(m["id"], m["secrets"])
        return WebhookSource(
            id=m["id"], name=m["name"], scheme=SchemeSettings.model_validate(m["scheme"]),
            event_id_path=m["event_id_path"], event_type_path=m["event_type_path"],
            max_body_bytes=int(m["max_body_bytes"]), enabled=bool(m["enabled"]),
            created_at=float(m["created_at"]), updated_at=float(m["updated_at"]),
            secrets=tuple((s.added_at, s.expires_at) for s in secrets))

    # -- CRUD ------------------------------------------------------------------------------

    async def add(self, name: str, scheme: SchemeSettings, secrets: Sequence[str], *,
                  event_id: str | None = None, event_type: str | None = None,
                  max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                  enabled: bool = True) -> WebhookSource:
        """Add a source; WebhookSourceExists if the name is taken."""
        _check_name(name)
        if not secrets:
            raise ConfigError("a webhook source needs at least one secret")
        if not 1 <= max_body_bytes <= _MAX_BODY_CEILING:
            raise ConfigError(f"max body size must be 1..{_MAX_BODY_CEILING} bytes")
        now = time.time()
        source_id = new_id()
        sealed = self._seal(source_id, [SourceSecret(_check_secret(s, scheme), now)
                                        for s in secrets])
        values = {
            "id": source_id, "name": name,
            "scheme": scheme.model_dump(mode="json", exclude_defaults=True),
            "secrets": sealed,
            "event_id_path": _check_expression("event id", event_id),
            "event_type_path": _check_expression("event type", event_type),
            "max_body_bytes": max_body_bytes, "enabled": enabled,
            "created_at": now, "updated_at": now,
        }
        store = self._host.store
        try:
            with store._errors(f"add webhook source {name!r}"):
                async with store.engine.begin() as conn:
                    await conn.execute(_SOURCES.insert().values(**values))
        except PatchwireError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise WebhookSourceExists(
                    f"a webhook source named {name!r} already exists") from None
            raise
        return self._record(values)

    async def _row(self, name: str) -> Row[Any]:
        store = self._host.store
        with store._errors(f"read webhook source {name!r}"):
            async with store.engine.connect() as conn:
                row = (await conn.execute(
                    select(_SOURCES).where(_SOURCES.c.name == name))).first()
        if row is None:
            raise UnknownWebhookSource(f"no webhook source named {name!r}")
        return row

    async def get(self, name: str) -> WebhookSource:
        return self._record((await self._row(name))._mapping)

    async def list(self) -> list[WebhookSource]:
        store = self._host.store
        with store._errors("list webhook sources"):
            async with store.engine.connect() as conn:
                rows = (await conn.execute(select(_SOURCES).order_by(_SOURCES.c.name))).all()
        return [self._record(r._mapping) for r in rows]

    async def remove(self, name: str) -> None:
        """Delete a source (its inbox events stay, for the record)."""
        store = self._host.store
        with store._errors(f"remove webhook source {name!r}"):
            async with store.engine.begin() as conn:
                result = await conn.execute(delete(_SOURCES).where(_SOURCES.c.name == name))
        if not result.rowcount:
            raise UnknownWebhookSource(f"no webhook source named {name!r}")

    async def update(self, name: str, *, enabled: bool | None = None,
                     scheme: SchemeSettings | None = None,
                     event_id: str | None = None, event_type: str | None = None,
                     max_body_bytes: int | None = None) -> WebhookSource:
        """Change settings (not secrets: see :meth:`rotate`). An empty expression clears it."""
        values: dict[str, Any] = {"updated_at": time.time()}
        if enabled is not None:
            values["enabled"] = enabled
        if scheme is not None:
            values["scheme"] = scheme.model_dump(mode="json", exclude_defaults=True)
        if event_id is not None:
            values["event_id_path"] = _check_expression("event id", event_id)
        if event_type is not None:
            values["event_type_path"] = _check_expression("event type", event_type)
        if max_body_bytes is not None:
            if not 1 <= max_body_bytes <= _MAX_BODY_CEILING:
                raise ConfigError(f"max body size must be 1..{_MAX_BODY_CEILING} bytes")
            values["max_body_bytes"] = max_body_bytes
        store = self._host.store
        with store._errors(f"update webhook source {name!r}"):
            async with store.engine.begin() as conn:
                result = await conn.execute(
                    update(_SOURCES).where(_SOURCES.c.name == name).values(**values))
        if not result.rowcount:
            raise UnknownWebhookSource(f"no webhook source named {name!r}")
        return await self.get(name)

    async def rotate(self, name: str, secret: str, *, grace_s: float = DEFAULT_GRACE_S,
                     now: float | None = None) -> WebhookSource:
        """Add ``secret`` (newest first); the other active secrets expire after ``grace_s``
        seconds (0: at once; at most :data:`MAX_GRACE_S`). Secrets already expired are
        dropped."""
        if not 0 <= grace_s <= MAX_GRACE_S:  # NaN fails both comparisons too
            raise ConfigError(f"grace period must be between 0 and a year ({MAX_GRACE_S:g} "
                              f"seconds), got {grace_s!r}")
        now = time.time() if now is None else now
        store = self._host.store
        with store._errors(f"rotate the secret of webhook source {name!r}"):
            async with store.engine.connect() as conn:
                # the write lock first (SQLite: BEGIN IMMEDIATE; PostgreSQL: the row lock),
                # so two rotations at once cannot drop each other's secret
                conn = await conn.execution_options(patchwire_sqlite_immediate=True)
                async with conn.begin():
                    row = (await conn.execute(select(_SOURCES).where(
                        _SOURCES.c.name == name).with_for_update())).first()
                    if row is None:
                        raise UnknownWebhookSource(f"no webhook source named {name!r}")
                    m = row._mapping
                    scheme = SchemeSettings.model_validate(m["scheme"])
                    new = SourceSecret(_check_secret(secret, scheme), now)
                    kept = [SourceSecret(s.value, s.added_at,
                                         s.expires_at if s.expires_at is not None
                                         and s.expires_at <= now + grace_s
                                         else now + grace_s)
                            for s in self._open(m["id"], m["secrets"]) if s.active(now)]
                    kept = [s for s in kept if s.active(now)] if grace_s > 0 else []
                    await conn.execute(update(_SOURCES).where(_SOURCES.c.id == m["id"]).values(
                        secrets=self._seal(m["id"], [new, *kept]), updated_at=now))
        return await self.get(name)

    async def loaded(self) -> dict[str, LoadedSource]:
        """Every source, secrets decrypted and expressions compiled (for the receiver)."""
        store = self._host.store
        with store._errors("load webhook sources"):
            async with store.engine.connect() as conn:
                rows = (await conn.execute(select(_SOURCES))).all()
        loaded: dict[str, LoadedSource] = {}
        for row in rows:
            m = row._mapping
            id_path, type_path = m["event_id_path"], m["event_type_path"]
            try:
                secrets = self._open(m["id"], m["secrets"])
            except PatchwireError as exc:
                # One source whose secret this key set cannot open (the key was rotated
                # away) must not take the others down: it verifies nothing (`no_secret`,
                # a 5xx its sender retries) until its secret is set again.
                log.warning("webhook source %r: %s", m["name"], exc)
                secrets = ()
            loaded[m["name"]] = LoadedSource(
                name=m["name"], scheme=SchemeSettings.model_validate(m["scheme"]),
                secrets=secrets,
                event_id=compile_expression(id_path) if id_path else None,
                event_type=compile_expression(type_path) if type_path else None,
                max_body_bytes=int(m["max_body_bytes"]), enabled=bool(m["enabled"]))
        return loaded

    async def reencrypt(self) -> int:
        """Re-encrypt every source's secrets under the vault's active key (after ``patchwire
        vault rotate``); how many sources were rewritten."""
        store = self._host.store
        count = 0
        with store._errors("re-encrypt webhook source secrets"):
            async with store.engine.begin() as conn:
                rows = (await conn.execute(select(_SOURCES.c.id, _SOURCES.c.secrets))).all()
                for source_id, token in rows:
                    sealed = self._seal(source_id, self._open(source_id, token))
                    await conn.execute(update(_SOURCES).where(
                        _SOURCES.c.id == source_id).values(secrets=sealed))
                    count += 1
        return count


class SourceCache:
    """The receiver's view of the sources: reloaded every ``ttl`` seconds (changes made by
    another process, such as ``patchwire webhooks source rotate``, apply within that), at
    once after :meth:`invalidate` (changes through this process's API), and on a miss at
    most every ``miss_interval`` seconds (a source added a moment ago is found; a flood of
    posts to unknown names costs one query per interval, not one per request)."""

    def __init__(self, sources: WebhookSources, *, ttl: float = 2.0,
                 miss_interval: float = 0.1) -> None:
        self._sources = sources
        self.ttl = ttl
        self.miss_interval = miss_interval
        self._loaded: dict[str, LoadedSource] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    async def get(self, name: str) -> LoadedSource | None:
        now = time.monotonic()
        found = self._loaded.get(name)
        age = now - self._loaded_at
        if age < self.ttl and (found is not None or age < self.miss_interval):
            return found
        async with self._lock:  # one reload for every request that finds the cache stale
            if self._loaded_at <= now - min(self.ttl, self.miss_interval if found is None
                                            else self.ttl):
                self._loaded = await self._sources.loaded()
                self._loaded_at = time.monotonic()
        return self._loaded.get(name)
