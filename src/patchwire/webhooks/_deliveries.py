"""Outbound webhooks: subscriptions, the dispatcher and the sender.

Events (``events`` table: flow ``emit`` steps, run and sync events, :func:`publish`) reach
subscriber endpoints in three steps:

1. **Dispatch** (:meth:`WebhookOutbox.dispatch`): undispatched events, oldest first, become
   one delivery per matching active subscription, and are marked dispatched, in one
   transaction; deliveries are unique per (subscription, event). A crash before the commit
   leaves the events undispatched, after it the deliveries exist: none is lost, none made
   twice.
2. **Send** (:class:`DeliveryWorker`): per endpoint strictly in the order of the events,
   one request in flight; endpoints in parallel. The worker holds a lease on the endpoint
   while it sends, so two processes never send to one endpoint at once (which is what keeps
   the order across processes). Requests carry the Standard Webhooks headers
   (``webhook-id`` = the event id, the same on every retry and for every endpoint,
   ``webhook-timestamp``, ``webhook-signature`` ``v1,<base64 HMAC-SHA256>``) and the payload
   ``{"type", "timestamp", "data"}``. They go through the SSRF guard of the call path
   (``http/_ssrf.py``): private and loopback endpoints are refused unless
   ``Settings.allow_networks`` admits them. Redirects are not followed (a 3xx is a failure,
   as the Standard Webhooks spec recommends).
3. **Retry**: a failed attempt (non-2xx, timeout, connection error) is tried again on
   :data:`RETRY_SCHEDULE` with ±20% jitter, later if ``Retry-After`` asks (capped); after
   the last attempt the delivery is ``failed`` and the endpoint's next delivery goes.
   ``410 Gone`` disables the endpoint; so do five days of failures without a success.

Ordering choice (Svix FIFO-style): a failing delivery holds back the later deliveries of
its endpoint until it succeeds or exhausts its schedule. Receivers can then apply events
in order without reordering logic; the price is head-of-line blocking on a broken
endpoint, which is bounded by the schedule (about 27.6 hours) and by disabling. Other
endpoints are never held back.

Delivery is at least once: a crash after a request but before its result is committed
sends it again (receivers dedupe on ``webhook-id``). Results are group-committed so that
the store is not one transaction per delivery; an endpoint's results are committed before
its next batch is read and before its lease is released.

Secrets: generated ``whsec_<base64 of 24 random bytes>``, shown once at creation, stored
encrypted by the vault (AAD :func:`subscription_aad`). Records and logs carry no secret
and no signature; error excerpts are redacted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import itertools
import logging
import random
import re
import secrets
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from sqlalchemy import Table, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from patchwire.auth.vault import Vault
from patchwire.errors import (  # noqa: F401 (re-exported)
    ConfigError,
    InvalidSubscription,
    LookupFailed,
    StoreError,
    UnknownDelivery,
    UnknownSubscription,
)
from patchwire.http import (
    DestinationPolicy,
    DestinationRefused,
    GuardedConnector,
    Redactor,
    WireConnectError,
    WirePool,
    excerpt,
    instant_retries,
    literal_address,
    parse_retry_after,
)
from patchwire.ids import new_id
from patchwire.store import (
    Store,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookSubscriptionRow,
    new_owner_id,
)
from patchwire.store.core import _SQLITE_IMMEDIATE, SQLITE_BUSY_TIMEOUT_MS
from patchwire.store.models import EventRow
from patchwire.webhooks._schemes import SchemeSettings, sign

__all__ = [
    "DELIVERY_STATUSES",
    "DISABLE_AFTER_FAILING_S",
    "RETRY_AFTER_CAP_S",
    "RETRY_JITTER",
    "RETRY_SCHEDULE",
    "Attempt",
    "CreatedSubscription",
    "Delivery",
    "DeliveryWorker",
    "InvalidSubscription",
    "Subscription",
    "UnknownDelivery",
    "UnknownSubscription",
    "WebhookOutbox",
    "generate_secret",
    "retry_delay",
    "subscription_aad",
    "type_matches",
]

log = logging.getLogger("patchwire.webhooks")

#: seconds to wait before each attempt of a delivery: the first goes at once, then 5 s,
#: 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after the previous failure (8 attempts, about
#: 27.6 hours; the schedule Svix publishes)
RETRY_SCHEDULE: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18_000.0, 36_000.0,
                                     36_000.0)
#: each wait is drawn uniformly from ±this fraction around its step, so endpoints that
#: failed together (an outage) are not all retried in the same second
RETRY_JITTER = 0.2
#: ``Retry-After`` is honoured up to this many seconds (a receiver cannot park a delivery
#: for a year)
RETRY_AFTER_CAP_S = 36_000.0
#: an endpoint failing this long without a success is disabled
DISABLE_AFTER_FAILING_S = 5 * 86_400.0
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
SUBSCRIPTION_STATUSES = ("active", "disabled")

#: per-request timeouts: the Standard Webhooks spec recommends 15-30 s for the whole request
REQUEST_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 5.0
#: bytes of a response read (for the log excerpt); the rest is not waited for
_RESPONSE_READ_LIMIT = 64 * 1024
#: deliveries of one endpoint read per query
_BATCH = 200
#: events dispatched per transaction
_DISPATCH_BATCH = 1000
#: results waiting for their commit before a sender waits for the writer
_WRITE_BACKLOG = 5000
_SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 24
_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9_.:*-]{1,200}$")
_USER_AGENT = "Patchwire-Webhooks/0.1"
#: outbound requests are signed the way the receiver verifies Standard Webhooks
_STANDARD = SchemeSettings(scheme="standard")

_SUBS = cast(Table, WebhookSubscriptionRow.__table__)
_DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)
_ATTEMPTS = cast(Table, WebhookAttemptRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)


# -- errors ----------------------------------------------------------------------------------



# -- pure pieces -----------------------------------------------------------------------------


def subscription_aad(subscription_id: str) -> bytes:
    """The associated data binding a subscription's encrypted secret to its row."""
    return f"webhook_subscription:{subscription_id}".encode()


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return _SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the base64 part, decoded)."""
    body = secret.removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSubscription("the secret must be 'whsec_' followed by base64") from None
    if len(key) < 16:
        raise InvalidSubscription("the secret must hold at least 16 bytes (24 recommended)")
    return key


def _compile_filter(patterns: Iterable[str]) -> re.Pattern[str]:
    # ``*`` matches any run of characters, dots included: ``order.*`` takes
    # ``order.created`` and ``order.item.added``; ``*`` alone takes everything.
    alternatives = [".*".join(map(re.escape, p.split("*"))) for p in patterns]
    return re.compile("|".join(f"(?:{a})" for a in alternatives) or "(?!)")


def type_matches(patterns: Iterable[str], event_type: str) -> bool:
    """Whether ``event_type`` is taken by a filter (``order.*``, ``*``, exact types)."""
    return _compile_filter(patterns).fullmatch(event_type) is not None


def retry_delay(tries: int, rng: random.Random, *, retry_after: float | None = None,
                schedule: Sequence[float] = RETRY_SCHEDULE,
                jitter: float = RETRY_JITTER) -> float | None:
    """Seconds before the next attempt after ``tries`` attempts failed, or ``None`` when the
    schedule is exhausted. A ``Retry-After`` longer than the drawn wait wins (capped)."""
    if tries >= len(schedule):
        return None
    delay = schedule[tries] * rng.uniform(1.0 - jitter, 1.0 + jitter)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
    return delay


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _check_url(url: str, policy: DestinationPolicy) -> str:
    """Refuse what can never be a subscriber endpoint. Addresses behind names are checked
    by the SSRF guard when connecting (a name can change what it resolves to)."""
    url = url.strip()
    if len(url) > 2000:
        raise InvalidSubscription("the endpoint URL is longer than 2000 characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidSubscription("the endpoint URL cannot be parsed") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidSubscription("the endpoint URL must start with https:// or http://")
    host = parts.hostname
    if not host:
        raise InvalidSubscription("the endpoint URL has no host")
    if parts.username is not None or parts.password is not None:
        # credentials in a URL end up in every log line that shows the endpoint
        raise InvalidSubscription("the endpoint URL must not carry credentials (user:pass@)")
    try:
        policy.check_name(host)
        address = literal_address(host)
        if address is not None:
            policy.check_address(host, address)
    except DestinationRefused as exc:
        raise InvalidSubscription(f"the SSRF guard refuses this endpoint: {exc}") from None
    return url


def _check_types(event_types: Iterable[str]) -> tuple[str, ...]:
    types = tuple(dict.fromkeys(t.strip() for t in event_types))
    if not types:
        raise InvalidSubscription("give at least one event type (or '*' for every event)")
    for t in types:
        if not _TYPE_PATTERN.match(t):
            raise InvalidSubscription(
                f"event type filter {t[:200]!r} is invalid (letters, digits, '_', '.', ':', "
                "'-' and '*' wildcards, 1-200 characters)")
    return types


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    status: str
    disabled_reason: str | None
    disabled_at: float | None
    failing_since: float | None
    retry_at: float | None
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "event_types": list(self.event_types),
                "description": self.description, "status": self.status,
                "disabled_reason": self.disabled_reason, "disabled_at": _iso(self.disabled_at),
                "failing_since": _iso(self.failing_since), "retry_at": _iso(self.retry_at),
                "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at)}


@dataclass(frozen=True, slots=True)
class CreatedSubscription:
    """A new subscription and its secret: the only time the secret is shown."""

    subscription: Subscription
    secret: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {**self.subscription.to_dict(), "secret": self.secret}


@dataclass(frozen=True, slots=True)
class Attempt:
    id: str
    delivery_id: str
    attempt: int
    outcome: str
    status_code: int | None
    latency_ms: float
    error: str | None
    started_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "attempt": self.attempt, "outcome": self.outcome,
                "status_code": self.status_code, "latency_ms": round(self.latency_ms, 3),
                "error": self.error, "started_at": _iso(self.started_at)}


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    event_created_at: float
    status: str
    tries: int
    attempts: int
    next_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    created_at: float
    updated_at: float
    delivered_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "subscription_id": self.subscription_id,
                "event_id": self.event_id, "event_type": self.event_type,
                "event_created_at": _iso(self.event_created_at), "status": self.status,
                "tries": self.tries, "attempts": self.attempts,
                "next_attempt_at": _iso(self.next_attempt_at),
                "last_status_code": self.last_status_code, "last_error": self.last_error,
                "last_latency_ms": (None if self.last_latency_ms is None
                                    else round(self.last_latency_ms, 3)),
                "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
                "delivered_at": _iso(self.delivered_at)}


def _subscription(m: Any) -> Subscription:
    return Subscription(
        id=m["id"], url=m["url"], event_types=tuple(m["event_types"] or ()),
        description=m["description"], status=m["status"],
        disabled_reason=m["disabled_reason"], disabled_at=m["disabled_at"],
        failing_since=m["failing_since"], retry_at=m["retry_at"], created_at=m["created_at"],
        updated_at=m["updated_at"])


def _delivery(m: Any) -> Delivery:
    return Delivery(**{k: m[k] for k in Delivery.__slots__})


def _attempt(m: Any) -> Attempt:
    return Attempt(**{k: m[k] for k in Attempt.__slots__})


_SUB_PUBLIC = [c for c in _SUBS.c if c.name not in ("secret", "owner", "lease_until")]


# -- the repository --------------------------------------------------------------------------


class WebhookOutbox:
    """Subscriptions and deliveries in the store; the dispatcher. API and CLI use this;
    the :class:`DeliveryWorker` sends.

    ``allow_networks``: what the SSRF guard admits besides public addresses (the
    settings' ``allow_networks``), checked on endpoint URLs at creation.
    """

    def __init__(self, store: Store, vault: Vault, *, allow_networks: Iterable[str] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.vault = vault
        self.clock = clock
        self.allow_networks = tuple(allow_networks)
        self.policy = DestinationPolicy.from_allow_list(self.allow_networks)

    @classmethod
    def of(cls, pw: Any) -> WebhookOutbox:
        """The outbox of an opened ``Patchwire`` (its store, vault and allow-list)."""
        return cls(pw.store, pw.vault, allow_networks=pw.settings.allow_networks)

    # -- subscriptions -----------------------------------------------------------------------

    async def create_subscription(self, url: str, event_types: Iterable[str], *,
                                  description: str | None = None,
                                  secret: str | None = None) -> CreatedSubscription:
        """A new active subscription; its secret (generated unless given) is returned once."""
        url = _check_url(url, self.policy)
        types = _check_types(event_types)
        if description is not None and len(description) > 500:
            raise InvalidSubscription("the description is longer than 500 characters")
        secret = secret.strip() if secret is not None else generate_secret()
        if not secret.startswith(_SECRET_PREFIX):
            raise InvalidSubscription("the secret must start with 'whsec_'")
        secret_key(secret)  # validates
        now = self.clock()
        sub_id = new_id()
        token = self.vault.encrypt_json({"secret": secret}, aad=subscription_aad(sub_id))
        values = {"id": sub_id, "url": url, "event_types": list(types),
                  "description": description, "secret": token, "status": "active",
                  "disabled_reason": None, "disabled_at": None, "failing_since": None,
                  "retry_at": None, "owner": None, "lease_until": None, "created_at": now,
                  "updated_at": now}
        with self.store._errors("create a webhook subscription"):
            async with self.store.engine.begin() as conn:
                await conn.execute(insert(_SUBS).values(**values))
        return CreatedSubscription(_subscription(values), secret)

    async def list_subscriptions(self, *, status: str | None = None) -> list[Subscription]:
        stmt = select(*_SUB_PUBLIC).order_by(_SUBS.c.created_at, _SUBS.c.id)
        if status is not None:
            stmt = stmt.where(_SUBS.c.status == status)
        with self.store._errors("list webhook subscriptions"):
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [_subscription(r._mapping) for r in rows]

    async def get_subscription(self, subscription_id: str) -> Subscription:
        with self.store._errors("read a webhook subscription"):
            async with self.store.engine.connect() as conn:
                row = (await conn.execute(
                    select(*_SUB_PUBLIC).where(_SUBS.c.id == subscription_id))).first()
        if row is None:
            raise UnknownSubscription(f"no webhook subscription {subscription_id!r}")
        return _subscription(row._mapping)

    async def remove_subscription(self, subscription_id: str) -> None:
        """Delete a subscription with its deliveries and their attempt log."""
        with self.store._errors("remove a webhook subscription"):
            async with self.store.engine.begin() as conn:
                gone = await conn.execute(delete(_SUBS).where(_SUBS.c.id == subscription_id))
                await conn.execute(delete(_ATTEMPTS).where(
                    _ATTEMPTS.c.subscription_id == subscription_id))
                await conn.execute(delete(_DELIVERIES).where(
                    _DELIVERIES.c.subscription_id == subscription_id))
        if gone.rowcount == 0:
            raise UnknownSubscription(f"no webhook subscription {subscription_id!r}")

    async def enable(self, subscription_id: str) -> Subscription:
        """Re-enable an endpoint: its pending deliveries go again, in order, at once (the
        failure streak starts afresh)."""
        return await self._set_status(subscription_id, status="active", disabled_reason=None,
                                      disabled_at=None, failing_since=None, retry_at=None)

    async def disable(self, subscription_id: str, *,
                      reason: str = "disabled by a person") -> Subscription:
        """Stop sending to an endpoint. Its pending deliveries stay pending (they go when it
        is enabled again); events published meanwhile are not delivered to it."""
        return await self._set_status(subscription_id, status="disabled",
                                      disabled_reason=reason, disabled_at=self.clock())

    async def _set_status(self, subscription_id: str, **values: Any) -> Subscription:
        with self.store._errors("update a webhook subscription"):
            async with self.store.engine.begin() as conn:
                await conn.execute(update(_SUBS).where(_SUBS.c.id == subscription_id).values(
                    updated_at=self.clock(), **values))
        return await self.get_subscription(subscription_id)

    async def secret_of(self, subscription_id: str) -> str:
        """The subscription's secret (decrypted): for the sender, never for display."""
        with self.store._errors("read a webhook subscription"):
            async with self.store.engine.connect() as conn:
                token = await conn.scalar(
                    select(_SUBS.c.secret).where(_SUBS.c.id == subscription_id))
        if token is None:
            raise UnknownSubscription(f"no webhook subscription {subscription_id!r}")
        return str(self.vault.decrypt_json(token, aad=subscription_aad(subscription_id))
                   ["secret"])

    async def reencrypt(self) -> int:
        """Re-encrypt every subscription's secret under the vault's active key (after
        ``patchwire vault rotate``); how many were rewritten."""
        count = 0
        with self.store._errors("re-encrypt webhook subscription secrets"):
            async with self.store.engine.begin() as conn:
                rows = (await conn.execute(select(_SUBS.c.id, _SUBS.c.secret))).all()
                for sub_id, token in rows:
                    if not self.vault.needs_reencrypt(token):
                        continue
                    doc = self.vault.decrypt_json(token, aad=subscription_aad(sub_id))
                    await conn.execute(update(_SUBS).where(_SUBS.c.id == sub_id).values(
                        secret=self.vault.encrypt_json(doc, aad=subscription_aad(sub_id))))
                    count += 1
        return count

    # -- deliveries --------------------------------------------------------------------------

    async def list_deliveries(self, *, subscription_id: str | None = None,
                              status: str | None = None, limit: int = 100,
                              before: str | None = None) -> list[Delivery]:
        """Deliveries, newest first (by id, which is time-ordered)."""
        stmt = select(_DELIVERIES)
        if subscription_id is not None:
            stmt = stmt.where(_DELIVERIES.c.subscription_id == subscription_id)
        if status is not None:
            stmt = stmt.where(_DELIVERIES.c.status == status)
        if before is not None:
            stmt = stmt.where(_DELIVERIES.c.id < before)
        stmt = stmt.order_by(_DELIVERIES.c.id.desc()).limit(max(1, limit))
        with self.store._errors("list webhook deliveries"):
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [_delivery(r._mapping) for r in rows]

    async def get_delivery(self, delivery_id: str) -> Delivery:
        with self.store._errors("read a webhook delivery"):
            async with self.store.engine.connect() as conn:
                row = (await conn.execute(
                    select(_DELIVERIES).where(_DELIVERIES.c.id == delivery_id))).first()
        if row is None:
            raise UnknownDelivery(f"no webhook delivery {delivery_id!r}")
        return _delivery(row._mapping)

    async def attempts(self, delivery_id: str) -> list[Attempt]:
        """The attempt log of one delivery, oldest first."""
        with self.store._errors("read webhook delivery attempts"):
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(select(_ATTEMPTS).where(
                    _ATTEMPTS.c.delivery_id == delivery_id).order_by(_ATTEMPTS.c.attempt))).all()
        return [_attempt(r._mapping) for r in rows]

    async def redeliver(self, delivery_id: str) -> Delivery:
        """Send a delivery again with a fresh retry schedule, whatever its status. It takes
        its place in its endpoint's order (the oldest pending goes first), and the endpoint
        is due at once."""
        now = self.clock()
        with self.store._errors("redeliver a webhook delivery"):
            async with self.store.engine.begin() as conn:
                row = (await conn.execute(update(_DELIVERIES).where(
                    _DELIVERIES.c.id == delivery_id).values(
                    status="pending", tries=0, next_attempt_at=now, updated_at=now).returning(
                    _DELIVERIES.c.subscription_id))).first()
                if row is not None:
                    await conn.execute(update(_SUBS).where(_SUBS.c.id == row[0]).values(
                        retry_at=None, updated_at=now))
        if row is None:
            raise UnknownDelivery(f"no webhook delivery {delivery_id!r}")
        _kick_workers(self.store)
        return await self.get_delivery(delivery_id)

    async def redeliver_failed(self, subscription_id: str) -> int:
        """Every failed delivery of an endpoint goes again (fresh schedules, in order)."""
        await self.get_subscription(subscription_id)
        now = self.clock()
        with self.store._errors("redeliver failed webhook deliveries"):
            async with self.store.engine.begin() as conn:
                result = await conn.execute(update(_DELIVERIES).where(
                    _DELIVERIES.c.subscription_id == subscription_id,
                    _DELIVERIES.c.status == "failed").values(
                    status="pending", tries=0, next_attempt_at=now, updated_at=now))
                await conn.execute(update(_SUBS).where(_SUBS.c.id == subscription_id).values(
                    retry_at=None, updated_at=now))
        _kick_workers(self.store)
        return int(result.rowcount or 0)

    async def count_deliveries(self, *, status: str | None = None) -> int:
        stmt = select(func.count()).select_from(_DELIVERIES)
        if status is not None:
            stmt = stmt.where(_DELIVERIES.c.status == status)
        with self.store._errors("count webhook deliveries"):
            async with self.store.engine.connect() as conn:
                return int(await conn.scalar(stmt) or 0)

    # -- the dispatcher ----------------------------------------------------------------------

    async def dispatch(self, *, limit: int = _DISPATCH_BATCH) -> int:
        """Turn up to ``limit`` undispatched events (oldest first) into deliveries for the
        active subscriptions whose filter takes them, and mark them dispatched — in one
        transaction. Returns how many events were taken (``limit``: there may be more)."""
        now = self.clock()
        is_pg = self.store.dialect == "postgresql"
        pick = (select(_EVENTS.c.id, _EVENTS.c.type, _EVENTS.c.created_at)
                .where(_EVENTS.c.dispatched_at.is_(None))
                .order_by(_EVENTS.c.created_at, _EVENTS.c.id).limit(limit))
        if is_pg:
            # concurrent dispatchers take different events instead of waiting on each other
            pick = pick.with_for_update(skip_locked=True)
        with self.store._errors("dispatch events to webhook subscriptions"):
            async with self.store.engine.connect() as conn:
                # SQLite: take the write lock up front, so dispatchers in several processes
                # queue instead of failing to upgrade a read transaction
                conn = await conn.execution_options(**{_SQLITE_IMMEDIATE: True})
                async with conn.begin():
                    events = (await conn.execute(pick)).all()
                    if not events:
                        return 0
                    subs = (await conn.execute(select(_SUBS.c.id, _SUBS.c.event_types).where(
                        _SUBS.c.status == "active"))).all()
                    filters = [(s.id, _compile_filter(s.event_types or ())) for s in subs]
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
                        stmt = dialect.insert(_DELIVERIES).on_conflict_do_nothing(
                            index_elements=["subscription_id", "event_id"])
                        for i in range(0, len(rows), 2000):
                            await conn.execute(stmt, rows[i:i + 2000])
                    await conn.execute(update(_EVENTS).where(
                        _EVENTS.c.id.in_([e.id for e in events])).values(dispatched_at=now))
        return len(events)


# -- sending ---------------------------------------------------------------------------------

#: running workers, so that :func:`publish` in the same process can wake them
_WORKERS: weakref.WeakSet[DeliveryWorker] = weakref.WeakSet()


def _kick_workers(store: Store) -> None:
    for worker in list(_WORKERS):
        if worker.outbox.store is store:
            worker.kick()


@dataclass(slots=True)
class _Pending:
    """A delivery as the sender reads it (with its event's data)."""

    id: str
    event_id: str
    event_type: str
    event_created_at: float
    tries: int
    attempts: int
    data: Any


@dataclass(slots=True)
class _Endpoint:
    id: str
    url: str
    secret: str = field(repr=False)
    failing_since: float | None
    retry_at: float | None
    redact: Redactor


@dataclass(slots=True)
class _Outcome:
    status_code: int | None
    latency_ms: float
    error: str | None
    retry_after: float | None


_UPDATE_FIELDS = ("status", "tries", "attempts", "next_attempt_at", "last_status_code",
                  "last_error", "last_latency_ms", "updated_at", "delivered_at")
_ATTEMPT_COLUMNS = ("id", "delivery_id", "subscription_id", "attempt", "outcome",
                    "status_code", "latency_ms", "error", "started_at")
#: SQLite binds at most 32,766 parameters a statement
_SQLITE_MAX_PARAMS = 30_000


@functools.lru_cache(maxsize=64)
def _sqlite_update_sql(rows: int) -> str:
    # UPDATE ... FROM (VALUES ...) (SQLite 3.33+): a whole batch in one statement; VALUES
    # columns are column1, column2... (column1 is the id)
    one = "(" + ", ".join("?" * (len(_UPDATE_FIELDS) + 1)) + ")"
    sets = ", ".join(f"{f} = v.column{i + 2}" for i, f in enumerate(_UPDATE_FIELDS))
    return (f"UPDATE webhook_deliveries SET {sets} FROM (VALUES "  # noqa: S608
            + ", ".join([one] * rows) + ") AS v WHERE webhook_deliveries.id = v.column1")


@functools.lru_cache(maxsize=64)
def _sqlite_insert_attempts_sql(rows: int) -> str:
    one = "(" + ", ".join("?" * len(_ATTEMPT_COLUMNS)) + ")"
    return (f"INSERT INTO webhook_attempts ({', '.join(_ATTEMPT_COLUMNS)}) VALUES "  # noqa: S608
            + ", ".join([one] * rows))


class _ResultWriter:
    """Group commit of attempt results: whatever queued while the previous transaction
    committed goes into the next one. Futures resolve in order.

    On a SQLite file the batch is written in a worker thread through a plain connection,
    many rows per statement: through aiosqlite, SQLAlchemy's per-row parameter processing
    and the driver's row-by-row binding keep taking the GIL from the event loop, which
    measured as a third of the delivery rate lost (the call log does the same, see
    ``Store.record_calls``). PostgreSQL (asyncpg, no thread) goes through SQLAlchemy.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._deliveries: list[tuple[Any, ...]] = []
        self._attempts: list[tuple[Any, ...]] = []
        self._subs: list[tuple[str, dict[str, Any]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        database = store.engine.url.database or ""
        self._sqlite_path = (database if store.dialect == "sqlite"
                             and database not in ("", ":memory:")
                             and not database.startswith("file:") else None)
        self._db: sqlite3.Connection | None = None

    @property
    def backlog(self) -> int:
        return len(self._attempts)

    def enqueue(self, delivery: tuple[Any, ...], attempt: tuple[Any, ...],
                sub: tuple[str, dict[str, Any]] | None) -> asyncio.Future[None]:
        """``delivery``: the id then the values of ``_UPDATE_FIELDS``; ``attempt``: the
        values of ``_ATTEMPT_COLUMNS``."""
        self._deliveries.append(delivery)
        self._attempts.append(attempt)
        if sub is not None:
            self._subs.append(sub)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return fut

    async def _run(self) -> None:
        while self._waiters:
            deliveries, self._deliveries = self._deliveries, []
            attempts, self._attempts = self._attempts, []
            subs, self._subs = self._subs, []
            waiters, self._waiters = self._waiters, []
            try:
                if self._sqlite_path is not None:
                    await asyncio.to_thread(self._commit_sqlite, deliveries, attempts, subs)
                else:
                    await self._commit(deliveries, attempts, subs)
            except BaseException as exc:
                for w in waiters:
                    if not w.done():
                        w.set_exception(exc if isinstance(exc, Exception)
                                        else StoreError("the result writer was cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    _UPDATE = (update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("b_id")).values(
        **{f: bindparam(f"b_{f}") for f in _UPDATE_FIELDS}))

    async def _commit(self, deliveries: list[tuple[Any, ...]], attempts: list[tuple[Any, ...]],
                      subs: list[tuple[str, dict[str, Any]]]) -> None:
        names = ("b_id", *(f"b_{f}" for f in _UPDATE_FIELDS))
        with self._store._errors(f"record {len(attempts)} webhook delivery attempts"):
            async with self._store.engine.begin() as conn:
                await conn.execute(self._UPDATE, [dict(zip(names, d, strict=True))
                                                  for d in deliveries])
                await conn.execute(insert(_ATTEMPTS), [dict(zip(_ATTEMPT_COLUMNS, a,
                                                                strict=True))
                                                       for a in attempts])
                for sub_id, values in subs:
                    await conn.execute(update(_SUBS).where(_SUBS.c.id == sub_id).values(
                        **values))

    def _commit_sqlite(self, deliveries: list[tuple[Any, ...]],
                       attempts: list[tuple[Any, ...]],
                       subs: list[tuple[str, dict[str, Any]]]) -> None:
        assert self._sqlite_path is not None
        if self._db is None:
            self._db = sqlite3.connect(self._sqlite_path, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA synchronous=NORMAL")
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for rows, sql in ((deliveries, _sqlite_update_sql),
                                  (attempts, _sqlite_insert_attempts_sql)):
                    step = max(1, _SQLITE_MAX_PARAMS // len(rows[0])) if rows else 1
                    for i in range(0, len(rows), step):
                        chunk = rows[i:i + step]
                        db.execute(sql(len(chunk)), tuple(itertools.chain.from_iterable(chunk)))
                for sub_id, values in subs:
                    cols = ", ".join(f"{k} = ?" for k in values)
                    db.execute(f"UPDATE webhook_subscriptions SET {cols} WHERE id = ?",  # noqa: S608
                               (*values.values(), sub_id))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot record webhook delivery attempts: {exc}") from exc

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 30)
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)


class DeliveryWorker:
    """Dispatches events and sends deliveries while started (``patchwire serve``).

    ``clock`` (epoch seconds) and ``rng`` can be replaced in tests, which then drive the
    worker with :meth:`run_once`; ``instant`` (default: the call path's testing switch
    ``patchwire.http.set_instant_retries``) makes every retry wait zero. ``resolver``
    replaces DNS under the SSRF guard (tests). ``max_endpoints``: endpoints sent to at
    once (one request in flight each).
    """

    def __init__(
        self, outbox: WebhookOutbox, *, owner: str | None = None, lease: float = 60.0,
        poll_interval: float = 0.5, max_endpoints: int = 256,
        clock: Callable[[], float] | None = None, rng: random.Random | None = None,
        schedule: Sequence[float] = RETRY_SCHEDULE, jitter: float = RETRY_JITTER,
        instant: bool | None = None, timeout: float = REQUEST_TIMEOUT_S,
        connect_timeout: float = CONNECT_TIMEOUT_S, resolver: AbstractResolver | None = None,
    ) -> None:
        self.outbox = outbox
        self.store = outbox.store
        self.owner = owner or new_owner_id()
        self.lease = lease
        self.poll_interval = poll_interval
        self.max_endpoints = max_endpoints
        self.clock = clock or outbox.clock
        self.rng = rng or random.Random()
        self.schedule = tuple(schedule)
        self.jitter = jitter
        self._instant = instant
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._wire_pool: WirePool | None = None
        self._writer = _ResultWriter(self.store)
        self._tasks: dict[str, asyncio.Task[int]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._stopping = False
        #: attempts made since start (benchmarks and tests read it)
        self.sent = 0

    @property
    def instant(self) -> bool:
        return instant_retries() if self._instant is None else self._instant

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> DeliveryWorker:
        self._stopping = False
        _WORKERS.add(self)
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def stop(self) -> None:
        """Stop sending. Requests in flight are abandoned (sent again later: at least
        once); recorded results are committed and this worker's leases released."""
        self._stopping = True
        _WORKERS.discard(self)
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._writer.close()
        with contextlib.suppress(Exception):
            async with self.store.engine.begin() as conn:
                await conn.execute(update(_SUBS).where(_SUBS.c.owner == self.owner).values(
                    owner=None, lease_until=None))
        if self._wire_pool is not None:
            await self._wire_pool.close()
            self._wire_pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> DeliveryWorker:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def kick(self) -> None:
        """Look for work now instead of at the next poll."""
        self._kick.set()

    def _wire(self) -> WirePool:
        if self._wire_pool is None:
            self._wire_pool = WirePool.beside(self._get_session(),
                                              limit=max(self.max_endpoints, 1))
        return self._wire_pool

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # the SSRF guard of the call path: every new connection is checked
                connector=GuardedConnector(self.outbox.policy, resolver=self._resolver,
                                           limit=max(self.max_endpoints, 1),
                                           ttl_dns_cache=300),
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
                timeout=self._timeout,
            )
        return self._session

    # -- driving -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery pass failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_interval)
            self._kick.clear()

    async def _pass(self) -> list[asyncio.Task[int]]:
        while await self.outbox.dispatch() >= _DISPATCH_BATCH:
            pass
        return await self._start_due()

    async def run_once(self) -> int:
        """Dispatch every event, then send to every due endpoint until each is done or
        waits for a retry; returns the attempts made. Tests drive the worker with this."""
        started = await self._pass()
        results = await asyncio.gather(*started)
        await self._writer.close()
        return sum(results)

    async def _start_due(self) -> list[asyncio.Task[int]]:
        room = self.max_endpoints - len(self._tasks)
        if room <= 0 or self._stopping:
            return []
        now = self.clock()
        has_work = exists().where(_DELIVERIES.c.subscription_id == _SUBS.c.id,
                                  _DELIVERIES.c.status == "pending")
        stmt = (select(_SUBS.c.id).where(
            _SUBS.c.status == "active",
            _SUBS.c.retry_at.is_(None) | (_SUBS.c.retry_at <= now),
            _SUBS.c.owner.is_(None) | (_SUBS.c.owner == self.owner)
            | (_SUBS.c.lease_until < now),
            has_work).order_by(_SUBS.c.retry_at, _SUBS.c.id).limit(room + len(self._tasks)))
        with self.store._errors("find due webhook endpoints"):
            async with self.store.engine.connect() as conn:
                due = [r[0] for r in (await conn.execute(stmt)).all()]
        started: list[asyncio.Task[int]] = []
        for sub_id in due:
            if sub_id in self._tasks or len(self._tasks) >= self.max_endpoints:
                continue
            task = asyncio.get_running_loop().create_task(self._serve(sub_id))
            self._tasks[sub_id] = task
            task.add_done_callback(functools.partial(self._done, sub_id))
            started.append(task)
        return started

    def _done(self, sub_id: str, task: asyncio.Task[int]) -> None:
        if self._tasks.get(sub_id) is task:
            del self._tasks[sub_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("sending to webhook endpoint %s failed: %s", sub_id, task.exception())
        # new deliveries may have come for it while it finished
        self._kick.set()

    # -- one endpoint ------------------------------------------------------------------------

    async def _claim(self, sub_id: str, now: float) -> _Endpoint | None:
        with self.store._errors("claim a webhook endpoint"):
            async with self.store.engine.begin() as conn:
                row = (await conn.execute(update(_SUBS).where(
                    _SUBS.c.id == sub_id, _SUBS.c.status == "active",
                    _SUBS.c.owner.is_(None) | (_SUBS.c.owner == self.owner)
                    | (_SUBS.c.lease_until < now)).values(
                    owner=self.owner, lease_until=now + self.lease).returning(
                    _SUBS.c.url, _SUBS.c.secret, _SUBS.c.failing_since,
                    _SUBS.c.retry_at))).first()
        if row is None:
            return None
        secret = str(self.outbox.vault.decrypt_json(row.secret, aad=subscription_aad(sub_id))
                     ["secret"])
        redact = Redactor([secret, secret.removeprefix(_SECRET_PREFIX)])
        return _Endpoint(sub_id, row.url, secret, row.failing_since, row.retry_at, redact)

    async def _renew(self, ep: _Endpoint, now: float) -> bool:
        """Extend the lease; False when the endpoint was disabled, removed or taken."""
        with self.store._errors("renew a webhook endpoint lease"):
            async with self.store.engine.begin() as conn:
                result = await conn.execute(update(_SUBS).where(
                    _SUBS.c.id == ep.id, _SUBS.c.owner == self.owner,
                    _SUBS.c.status == "active").values(lease_until=now + self.lease))
        return bool(result.rowcount)

    async def _release(self, sub_id: str) -> None:
        with contextlib.suppress(StoreError), self.store._errors("release a webhook endpoint"):
            async with self.store.engine.begin() as conn:
                await conn.execute(update(_SUBS).where(
                    _SUBS.c.id == sub_id, _SUBS.c.owner == self.owner).values(
                    owner=None, lease_until=None))

    async def _batch(self, sub_id: str) -> list[_Pending]:
        stmt = (select(_DELIVERIES.c.id, _DELIVERIES.c.event_id, _DELIVERIES.c.event_type,
                       _DELIVERIES.c.event_created_at, _DELIVERIES.c.tries,
                       _DELIVERIES.c.attempts, _EVENTS.c.data)
                .select_from(_DELIVERIES.outerjoin(_EVENTS,
                                                   _EVENTS.c.id == _DELIVERIES.c.event_id))
                .where(_DELIVERIES.c.subscription_id == sub_id,
                       _DELIVERIES.c.status == "pending")
                .order_by(_DELIVERIES.c.event_created_at, _DELIVERIES.c.event_id)
                .limit(_BATCH))
        with self.store._errors("read pending webhook deliveries"):
            async with self.store.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [_Pending(*r) for r in rows]

    async def _serve(self, sub_id: str) -> int:
        """Send an endpoint's pending deliveries in order until none is left, one waits
        for a retry, or the endpoint is disabled. Returns the attempts made."""
        now = self.clock()
        ep = await self._claim(sub_id, now)
        if ep is None:
            return 0
        if ep.retry_at is not None and ep.retry_at > now:  # another worker's retry wait
            await self._release(sub_id)
            return 0
        made = 0
        renewed = now
        last: asyncio.Future[None] | None = None
        try:
            while not self._stopping:
                if last is not None:
                    # committed before reading again: a sent delivery must not come back
                    await last
                batch = await self._batch(sub_id)
                if not batch:
                    break
                go_on = True
                for item in batch:
                    again = True
                    while again and go_on:  # again: an instant retry (testing switch)
                        now = self.clock()
                        if now - renewed > self.lease / 3:
                            if not await self._renew(ep, now):
                                go_on = False
                                break
                            renewed = now
                        outcome = await self._send(ep, item)
                        made += 1
                        self.sent += 1
                        last, go_on, again = self._record(ep, item, outcome)
                        if self._writer.backlog > _WRITE_BACKLOG:
                            await last
                    if not go_on:
                        break
                if not go_on:
                    break
            if last is not None:
                await last
        finally:
            await self._release(sub_id)
        return made

    async def _send(self, ep: _Endpoint, item: _Pending) -> _Outcome:
        body = orjson.dumps({"type": item.event_type,
                             "timestamp": _iso(item.event_created_at),
                             "data": item.data})
        timestamp = int(self.clock())
        # identity: only the first 64 KiB of an answer are read, and a cut-short gzip
        # stream could not be decoded
        headers = {"content-type": "application/json", "user-agent": _USER_AGENT,
                   "accept-encoding": "identity",
                   **sign(_STANDARD, ep.secret, body, timestamp=timestamp,
                          event_id=item.event_id)}
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            # the call path's own HTTP/1.1 connections (same SSRF guard), a third of the
            # CPU of an aiohttp request; whatever they cannot send goes through aiohttp
            answer = await self._wire().exchange("POST", ep.url, headers, None, body,
                                                 self._timeout, max_body=_RESPONSE_READ_LIMIT)
            if answer is None:
                async with self._get_session().post(ep.url, data=body, headers=headers,
                                                    allow_redirects=False) as resp:
                    answer = (resp.status, resp.headers,
                              await resp.content.read(_RESPONSE_READ_LIMIT), ep.url)
            status, answer_headers, payload, _ = answer
            if not 200 <= status < 300:
                retry_after = parse_retry_after(answer_headers.get("Retry-After"),
                                                now=self.clock())
                text = excerpt(payload, ep.redact, 300)
                error = f"HTTP {status}" + (f": {text}" if text else "")
        except DestinationRefused as exc:
            error = f"refused by the SSRF guard: {exc}"
        except TimeoutError:
            error = (f"no response within {self._timeout.total:g} s "
                     f"(connect {self._timeout.connect:g} s)")
        except (aiohttp.ClientConnectorError, WireConnectError) as exc:
            error = f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc})"
        except aiohttp.ClientError as exc:
            error = ep.redact(f"{type(exc).__name__}: {exc}")[:300]
        latency = (time.perf_counter() - started) * 1000.0
        return _Outcome(status, latency, error, retry_after)

    def _record(self, ep: _Endpoint, item: _Pending,
                outcome: _Outcome) -> tuple[asyncio.Future[None], bool, bool]:
        """Queue the attempt's result; returns its commit future, whether to go on with
        the endpoint, and whether to try this delivery again at once."""
        now = self.clock()
        tries, attempts = item.tries + 1, item.attempts + 1
        code = outcome.status_code
        ok = code is not None and 200 <= code < 300
        sub: dict[str, Any] = {}
        go_on = True
        delivered: float | None = None
        next_at: float | None = None
        if ok:
            status = "succeeded"
            delivered = now
            if ep.failing_since is not None or ep.retry_at is not None:
                sub = {"failing_since": None, "retry_at": None}
                ep.failing_since = ep.retry_at = None
        elif code == 410:
            # the receiver says it no longer wants webhooks from us (Standard Webhooks)
            status = "failed"
            sub = {"status": "disabled", "disabled_at": now, "retry_at": None,
                   "disabled_reason": "the endpoint answered 410 Gone"}
            go_on = False
        else:
            if ep.failing_since is None:
                ep.failing_since = now
                sub["failing_since"] = now
            delay = retry_delay(tries, self.rng, retry_after=outcome.retry_after,
                                schedule=self.schedule, jitter=self.jitter)
            if delay is None:
                status = "failed"  # the next delivery of the endpoint goes now
                if ep.retry_at is not None:
                    sub["retry_at"] = ep.retry_at = None
            else:
                status = "pending"
                delay = 0.0 if self.instant else delay
                next_at = now + delay
                if delay > 0:
                    sub["retry_at"] = ep.retry_at = next_at
                    go_on = False
            if now - ep.failing_since >= DISABLE_AFTER_FAILING_S:
                sub.update(status="disabled", disabled_at=now, retry_at=None,
                           disabled_reason=f"every delivery failed since "
                                           f"{_iso(ep.failing_since)} (5 days)")
                go_on = False
        if sub:
            sub["updated_at"] = now
        # in _UPDATE_FIELDS / _ATTEMPT_COLUMNS order
        delivery = (item.id, status, tries, attempts, next_at, code, outcome.error,
                    outcome.latency_ms, now, delivered)
        attempt = (new_id(), item.id, ep.id, attempts, "succeeded" if ok else "failed", code,
                   outcome.latency_ms, outcome.error, now - outcome.latency_ms / 1000.0)
        item.tries, item.attempts = tries, attempts
        # still pending and going on: the wait was zero, so it is tried again before any
        # later delivery of the endpoint
        again = status == "pending" and go_on
        return (self._writer.enqueue(delivery, attempt, (ep.id, sub) if sub else None),
                go_on, again)
