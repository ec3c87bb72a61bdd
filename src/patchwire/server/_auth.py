"""Access control: API keys with scopes, checked by an ASGI middleware in front of the app.

Keys look like ``pwk_<id>_<secret>``: ``id`` (12 hex characters) is public and names the
row; ``secret`` is 32 random bytes (urlsafe base64). Only the SHA-256 digest of the secret
is stored. Why not scrypt/argon2: a slow hash protects *guessable* secrets (passwords) from
offline guessing after a database leak; a 256-bit random secret cannot be guessed however
fast the hash is, so a deliberately slow one would only add ~50 ms of CPU per request and
hand attackers a way to exhaust the server. This is how high-entropy API tokens are
usually stored. The digest is compared in constant time.

When keys are checked (:class:`AccessPolicy`):

- The server started on a non-loopback address (``require_keys``): always. ``patchwire
  serve`` refuses such a bind unless an admin-capable key exists, and if every key is
  revoked later, every request is refused rather than the server becoming open.
- On loopback: as soon as the store holds an active key (created keys mean "protect
  this"); with none, everything behaves as before there were keys.

Where keys are not checked: ``/healthz``, webhooks (``/hooks/...``, verified by their
signatures), OAuth callbacks (``/oauth/...``, verified by their state), the login routes
(``/auth/...``) and static assets. Everything else — ``/api/*``, ``/mcp``, ``/metrics``,
the dashboard — needs a key, by header (``Authorization: Bearer pwk_...`` or
``X-API-Key``) or, for browsers, the ``patchwire_key`` cookie set by ``POST /auth/login``
(HttpOnly, SameSite=Strict; requests that change something must also come from the same
origin, against cross-site request forgery).

Which scope a request needs comes from :data:`SCOPE_RULES`, matched by method and path
prefix, first match wins; a route no rule names needs ``admin``. The ``admin`` scope allows
everything. Failed authentication is rate limited per client address (10 per minute, then
429 with ``Retry-After`` for wrong keys; valid keys from that address still work).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import ipaddress
import logging
import re
import secrets
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

import orjson
from sqlalchemy import Table, insert, select, update
from starlette.types import ASGIApp, Message, Receive, Send

from patchwire.config import host_and_port
from patchwire.errors import (
    PatchwireError,
    UnknownApiKey,
)
from patchwire.observability import AUTH_FAILURES
from patchwire.store import ApiKeyRow
from patchwire.store.records import utcnow

if TYPE_CHECKING:
    from patchwire.store import Store

__all__ = [
    "KEY_COOKIE",
    "PUBLIC",
    "SCOPES",
    "SCOPE_RULES",
    "AccessPolicy",
    "ApiKeyMiddleware",
    "ApiKeyRecord",
    "FailedAuthLimiter",
    "KeyRepository",
    "KeyRing",
    "ScopeRule",
    "SiteGuard",
    "UnknownApiKey",
    "add_scope_rule",
    "auth_routes",
    "check_key_name",
    "check_scopes",
    "is_loopback",
    "parse_key",
    "required_scope",
]

log = logging.getLogger("patchwire.auth")

ScopeName = Literal["read", "run", "approve", "admin"]
SCOPES: Final[tuple[ScopeName, ...]] = ("read", "run", "approve", "admin")
#: the "scope" of routes that need no key
PUBLIC: Final = "public"
KEY_PREFIX: Final = "pwk_"
KEY_COOKIE: Final = "patchwire_key"
#: how long the dashboard cookie lasts (a working day and a half)
COOKIE_MAX_AGE = 12 * 3600
#: last_used_at is written at most this often per key (a write per request would cost more
#: than the request)
TOUCH_INTERVAL = 60.0

_KEYS = cast(Table, ApiKeyRow.__table__)
_KEY_SHAPE = re.compile(r"^pwk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})




# -- keys and their storage ------------------------------------------------------------------


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
    """An API key as stored, without its secret (``secret_hash`` never leaves this module's
    checks: ``to_dict`` leaves it out)."""

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


#: the longest name a key may have (the column's width)
MAX_KEY_NAME = 200


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
    """API keys in the store (``api_keys``): what ``patchwire keys`` and ``/api/v1/keys``
    (``server/_keys_api.py``) both use."""

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


# -- which scope a request needs -------------------------------------------------------------


@dataclass(frozen=True)
class ScopeRule:
    """Requests with one of ``methods`` (``*``: any) whose path starts with ``pattern`` need
    ``scope``. In ``pattern`` a ``*`` stands for one path segment; a pattern ending in
    ``/`` matches everything under it, otherwise it matches the path itself and what lies
    under it (``/mcp`` matches ``/mcp`` and ``/mcp/x``, not ``/mcpx``)."""

    methods: frozenset[str]
    pattern: str
    scope: str
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        body = re.escape(self.pattern).replace(r"\*", "[^/]+")
        tail = "" if self.pattern.endswith("/") else "(?:/|$)"
        object.__setattr__(self, "regex", re.compile(f"^{body}{tail}"))

    def matches(self, method: str, path: str) -> bool:
        return ("*" in self.methods or method in self.methods) and bool(self.regex.match(path))


def _rule(methods: str, pattern: str, scope: str) -> ScopeRule:
    return ScopeRule(frozenset(methods.split("|")), pattern, scope)


_READ = "GET|HEAD"
#: The scope table, first match wins; no match: ``admin``. Keep specific rules above the
#: general ones. New routes are admin-only until a rule here (or ``add_scope_rule``) says
#: otherwise — except reads (GET/HEAD), which the two general read rules at the end cover.
SCOPE_RULES: list[ScopeRule] = [
    # verified by their own means, or needed before there is a key
    _rule("*", "/healthz", PUBLIC),
    _rule("*", "/hooks/", PUBLIC),          # webhooks: signatures (webhooks/)
    _rule("*", "/oauth/", PUBLIC),          # OAuth2 callbacks: the state parameter
    _rule("*", "/auth/", PUBLIC),           # dashboard login and logout
    _rule(_READ, "/assets/", PUBLIC),       # the dashboard's stylesheets and scripts
    _rule(_READ, "/static/", PUBLIC),
    _rule(_READ, "/favicon.ico", PUBLIC),
    # admin even to read
    _rule("*", "/api/v1/keys", "admin"),
    # run: call actions and tools, start, retry and cancel runs
    _rule("POST", "/api/v1/actions/*/call", "run"),
    _rule("POST", "/api/v1/connections/*/test", "run"),  # the connector's test call
    _rule("POST", "/api/v1/tools/*/call", "run"),
    _rule("POST", "/api/v1/flows/*/runs", "run"),
    _rule("POST", "/api/v1/runs/retry-failed", "run"),
    _rule("POST", "/api/v1/runs/*/retry", "run"),
    _rule("POST", "/api/v1/runs/*/cancel", "run"),
    _rule("POST", "/api/v1/deliveries/*/redeliver", "run"),
    _rule("POST", "/api/v1/webhooks/inbox/*/replay", "run"),
    _rule("*", "/mcp", "run"),              # MCP: tool calls (JSON-RPC over POST, GET, DELETE)
    # approve: decide approvals
    _rule("POST", "/api/v1/approvals/*/approve", "approve"),
    _rule("POST", "/api/v1/approvals/*/deny", "approve"),
    # the dashboard's actions (dashboard/_app.py), the same scopes as their API routes
    _rule("POST", "/runs/*/retry", "run"),
    _rule("POST", "/runs/*/cancel", "run"),
    _rule("POST", "/playground/*", "run"),
    _rule("POST", "/deliveries/*/redeliver", "run"),
    _rule("POST", "/approvals/*/approve", "approve"),
    _rule("POST", "/approvals/*/deny", "approve"),
    # read: every other GET — the REST API, its OpenAPI document, metrics, dashboard pages
    _rule(_READ, "/api/", "read"),
    _rule(_READ, "/", "read"),
]


def add_scope_rule(methods: str, pattern: str, scope: str) -> None:
    """Let routes added elsewhere (a dashboard's POST actions) need less than admin:
    ``add_scope_rule("POST", "/runs/*/retry", "run")``. Inserted before the general read
    rules; call it at import time of the module that adds the route."""
    if scope not in (*SCOPES, PUBLIC):
        raise ValueError(f"unknown scope {scope!r}")
    rule = _rule(methods, pattern, scope)
    if rule not in SCOPE_RULES:
        SCOPE_RULES.insert(len(SCOPE_RULES) - 2, rule)


def required_scope(method: str, path: str) -> str:
    """The scope a request needs (``PUBLIC``: none)."""
    method = method.upper()
    for rule in SCOPE_RULES:
        if rule.matches(method, path):
            return rule.scope
    return "admin"


# -- failed attempts -------------------------------------------------------------------------


class FailedAuthLimiter:
    """At most ``max_failures`` failed authentications per client address in any
    ``window`` seconds; past that the address's wrong or missing keys get 429 until the
    oldest failure ages out.

    A valid key is still served from a limited address: the people and backends sharing it
    (a NAT, a host, a chatbot backend with one bad key in its configuration) must not be
    locked out by whoever fails there. That gives a guesser nothing: a key's 256-bit secret
    cannot be guessed at any rate, so the limit exists to bound the noise and cost of
    failures, not to be the secret's protection. A success does not clear the count, or a
    guesser could ride on the others' successes."""

    def __init__(self, max_failures: int = 10, window: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None if it may now."""
        times = self._failures.get(client)
        if times is None:
            return None
        now = self._clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        if len(times) < self.max_failures:
            return None
        return max(0.0, times[0] + self.window - now)

    def fail(self, client: str) -> None:
        times = self._failures.get(client)
        if times is None:
            if len(self._failures) >= self._max_clients:
                self._prune()
            times = self._failures[client] = deque(maxlen=self.max_failures)
        times.append(self._clock())

    def _prune(self) -> None:
        # memory stays bounded under a spray from many addresses: drop stale entries, then
        # the oldest-inserted ones
        cutoff = self._clock() - self.window
        for client in [c for c, t in self._failures.items() if not t or t[-1] <= cutoff]:
            del self._failures[client]
        while len(self._failures) >= self._max_clients:
            del self._failures[next(iter(self._failures))]


# -- the active keys, cached -----------------------------------------------------------------


class KeyRing:
    """The active keys, re-read from the store at most every ``ttl`` seconds, so checking
    a key costs a dict lookup and a hash rather than a query per request. A key created or
    revoked with the CLI takes effect within ``ttl``."""

    def __init__(self, store: Callable[[], Store], *, ttl: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.ttl = ttl
        self._clock = clock
        self._keys: dict[str, ApiKeyRecord] = {}
        self._loaded_at: float | None = None
        self._loading: asyncio.Future[None] | None = None
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def invalidate(self) -> None:
        self._loaded_at = None

    async def _fresh(self) -> dict[str, ApiKeyRecord]:
        now = self._clock()
        if self._loaded_at is not None and now - self._loaded_at < self.ttl:
            return self._keys
        if self._loading is not None:  # one query however many requests wait for it
            await asyncio.shield(self._loading)
            return self._keys
        self._loading = asyncio.get_running_loop().create_future()
        try:
            keys = await KeyRepository(self._store()).list()
            self._keys = {k.id: k for k in keys}
            self._loaded_at = self._clock()
            self._loading.set_result(None)
        except BaseException as exc:
            self._loading.set_exception(exc)
            self._loading.exception()  # retrieved: the waiters re-raise it themselves
            raise
        finally:
            self._loading = None
        return self._keys

    async def any_active(self) -> bool:
        return bool(await self._fresh())

    async def verify(self, text: str) -> ApiKeyRecord | None:
        """The active key ``text`` is, or None (malformed, unknown, revoked, wrong secret)."""
        parsed = parse_key(text)
        if parsed is None:
            return None
        key_id, secret = parsed
        record = (await self._fresh()).get(key_id)
        if record is None:
            return None
        if not hmac.compare_digest(_digest(secret), record.secret_hash):
            return None
        return record

    def touch(self, key_id: str) -> None:
        """Note the key's use (written in the background, at most every TOUCH_INTERVAL)."""
        now = self._clock()
        if now - self._touched.get(key_id, -TOUCH_INTERVAL) < TOUCH_INTERVAL:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._touch(key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _touch(self, key_id: str) -> None:
        try:
            await KeyRepository(self._store()).touch(key_id, utcnow())
        except PatchwireError as exc:  # bookkeeping only: never fail a request for it
            log.warning("could not record the use of API key %s: %s", key_id, exc)


# -- the middleware --------------------------------------------------------------------------


@dataclass
class AccessPolicy:
    """How the app checks keys. ``require_keys``: always (a non-loopback bind), else only
    once the store holds an active key. ``cache_ttl``: see :class:`KeyRing`."""

    require_keys: bool = False
    cache_ttl: float = 1.0
    max_failures: int = 10
    failure_window: float = 60.0


def _header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return cast(bytes, value).decode("latin-1")
    return None


def _cookie(scope: MutableMapping[str, Any], name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def presented_key(scope: MutableMapping[str, Any]) -> tuple[str | None, bool]:
    """(the key a request presents, whether it came from the dashboard cookie)."""
    auth = _header(scope, b"authorization")
    if auth:
        kind, _, value = auth.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip(), False
    given = _header(scope, b"x-api-key")
    if given:
        return given.strip(), False
    cookie = _cookie(scope, KEY_COOKIE)
    return (cookie, True) if cookie else (None, False)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def _own_origin(scope: MutableMapping[str, Any]) -> str | None:
    # uvicorn takes the scheme from a trusted proxy's X-Forwarded-Proto (--proxy-headers,
    # on for 127.0.0.1 by default), so behind a TLS proxy this is https as the page's is
    host = _header(scope, b"host")
    return f"{scope.get('scheme', 'http')}://{host}".lower() if host else None


def same_origin(scope: MutableMapping[str, Any]) -> bool:
    """Whether a browser request comes from a page of this server: its ``Origin`` is this
    server's scheme and ``Host`` (``null``, sent by sandboxed pages and after cross-site
    redirects, is another site); without one, its ``Referer``."""
    mine = _own_origin(scope)
    if mine is None:
        return False
    origin = _header(scope, b"origin")
    if origin is not None:
        return _origin_of(origin) == mine
    referer = _header(scope, b"referer")
    return bool(referer) and _origin_of(referer or "") == mine


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address, IPv6 without brackets) is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _client(scope: MutableMapping[str, Any]) -> str:
    # The peer address. Behind a reverse proxy this is the proxy's: run uvicorn with
    # --proxy-headers (and --forwarded-allow-ips) so it becomes the real client's.
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _problem(send: Send, status: int, title: str, detail: str, code: str,
                   headers: Iterable[tuple[str, str]] = ()) -> None:
    body = orjson.dumps({"type": f"https://patchwire.dev/errors/{code}", "title": title,
                         "status": status, "detail": detail})
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers)]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, cookie: str | None = None) -> None:
    headers = [(b"location", location.encode()), (b"content-length", b"0")]
    if cookie is not None:
        headers.append((b"set-cookie", cookie.encode()))
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _wants_page(scope: MutableMapping[str, Any], method: str, path: str) -> bool:
    """A person's browser asking for a dashboard page (redirected to the login form)."""
    if method != "GET" or path.startswith(("/api/", "/mcp", "/metrics")):
        return False
    return "text/html" in (_header(scope, b"accept") or "")


class ApiKeyMiddleware:
    """Checks API keys in front of ``app`` (pure ASGI: streaming responses such as MCP's
    event stream pass through untouched)."""

    def __init__(self, app: ASGIApp, *, store: Callable[[], Store],
                 policy: AccessPolicy | None = None, ring: KeyRing | None = None,
                 limiter: FailedAuthLimiter | None = None) -> None:
        self.app = app
        self.policy = policy or AccessPolicy()
        self.ring = ring or KeyRing(store, ttl=self.policy.cache_ttl)
        self.limiter = limiter or FailedAuthLimiter(self.policy.max_failures,
                                                    self.policy.failure_window)

    async def enforced(self) -> bool:
        return self.policy.require_keys or await self.ring.any_active()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path = scope.get("path", "/")
        needed = required_scope(method, path)
        if needed == PUBLIC:
            await self.app(scope, receive, send)
            return
        try:
            enforced = await self.enforced()
        except PatchwireError:
            # the store cannot say whether keys exist: refuse rather than guess open
            log.exception("cannot read API keys; refusing %s %s", method, path)
            await _problem(send, 503, "Service unavailable", "API keys cannot be checked "
                           "right now (the store is unavailable)", "store_error")
            return
        if not enforced:
            await self.app(scope, receive, send)
            return
        client = _client(scope)
        text, via_cookie = presented_key(scope)
        # the key first: a valid one is served even while the address is limited
        record = await self.ring.verify(text) if text is not None else None
        wait = self.limiter.retry_after(client) if record is None else None
        if wait is not None:
            AUTH_FAILURES.labels("rate_limited").inc()
            await _problem(send, 429, "Too many failed authentications",
                           f"too many requests with invalid API keys from {client}; retry "
                           f"in {wait:.0f}s", "auth_rate_limited",
                           [("retry-after", str(max(1, round(wait + 0.5))))])
            return
        if text is None:
            AUTH_FAILURES.labels("missing").inc()
            if _wants_page(scope, method, path):
                query = scope.get("query_string", b"").decode("latin-1")
                target = path + (f"?{query}" if query else "")
                await _redirect(send, f"/auth/login?next={quote(target, safe='')}")
                return
            await _problem(send, 401, "Unauthorized", "this server needs an API key: send "
                           "'Authorization: Bearer pwk_...' (create one with `patchwire keys "
                           "create NAME --scope read`)", "unauthorized",
                           [("www-authenticate", 'Bearer realm="patchwire"')])
            return
        if record is None:
            self.limiter.fail(client)
            AUTH_FAILURES.labels("invalid").inc()
            await _problem(send, 401, "Unauthorized", "the API key is not valid (unknown, "
                           "revoked or mistyped)", "invalid_api_key",
                           [("www-authenticate", 'Bearer realm="patchwire", '
                             'error="invalid_token"')])
            return
        if not record.allows(needed):
            AUTH_FAILURES.labels("scope").inc()
            await _problem(send, 403, "Forbidden", f"{method} {path} needs the {needed!r} "
                           f"scope; key {record.id} ({record.name}) has "
                           f"{', '.join(record.scopes)}", "insufficient_scope",
                           [("www-authenticate", 'Bearer realm="patchwire", '
                             f'error="insufficient_scope", scope="{needed}"')])
            return
        if via_cookie and method not in _SAFE_METHODS and not same_origin(scope):
            # a cookie is sent by the browser whatever page asks: only our own pages may
            # use it to change something (SameSite=Strict is the first guard, this the second)
            AUTH_FAILURES.labels("cross_origin").inc()
            await _problem(send, 403, "Forbidden", "a request authenticated by the dashboard "
                           "cookie must come from this server's own pages", "cross_origin")
            return
        scope.setdefault("state", {})["api_key"] = record
        self.ring.touch(record.id)
        await self.app(scope, receive, send)


# -- where a request comes from -------------------------------------------------------------

#: answered whatever Host and Origin say: webhooks come from upstreams, often through a tunnel
#: or proxy that keeps its own Host, and are verified by signature (webhooks/); OAuth
#: callbacks are a provider's redirect, verified by their state
_ANY_SITE: Final = (("*", "/hooks/"), ("GET|HEAD", "/oauth/"))
#: Sec-Fetch-Site of what a page of this very origin sent, or the person typed
_OWN_FETCH_SITES: Final = frozenset({"same-origin", "none"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: on every response: no page of another site may frame this server's pages (clickjacking)
_NO_FRAMING: Final = ((b"content-security-policy", b"frame-ancestors 'none'"),
                      (b"x-frame-options", b"DENY"))


class SiteGuard:
    """Refuses, in front of every route (pure ASGI), what a hostile web page can make a
    browser send to a server it reaches — this one usually on loopback, open without keys:

    - ``Host`` must name this server, against DNS rebinding (a page whose name was made to
      resolve to 127.0.0.1 reaches the server with its own name in ``Host``): a loopback name
      or address, or the address the request arrived at, with the port it arrived at; or
      one of ``hosts`` (``allowed_hosts`` and the bind host: ``name`` at any port, or
      ``name:port``). Else 421.
    - ``Origin``, when sent, must be this server's own scheme and ``Host`` (``null`` is
      another site) — for reads too: no page of another origin has a reason to call this
      server. Else 403.
    - A request that changes something (not GET, HEAD or OPTIONS) the browser marks as
      ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` is refused (403), also
      ``same-site``: another port of localhost, or another subdomain, is another server.
      (Without ``Origin`` and ``Sec-Fetch-Site`` the client is not a browser.)

    Webhooks and OAuth callbacks are exempt (:data:`_ANY_SITE`). Every response gets
    ``Content-Security-Policy: frame-ancestors 'none'`` and ``X-Frame-Options: DENY``.
    """

    def __init__(self, app: ASGIApp, *, hosts: Iterable[str] = ()) -> None:
        self.app = app
        self._hosts: set[tuple[str, int | None]] = set()
        for text in hosts:
            parsed = host_and_port(text)
            # A wildcard bind (0.0.0.0, ::) names no host, and a loopback name without a
            # port would open every local port's name: both are accepted anyway where the
            # request arrives ("localhost:9000" for a forwarded port does add something).
            if parsed is not None and not (_unspecified(parsed[0]) or (
                    is_loopback(parsed[0]) and parsed[1] is None)):
                self._hosts.add(parsed)
        self._exempt = [_rule(methods, pattern, PUBLIC) for methods, pattern in _ANY_SITE]

    def _foreign_host(self, scope: MutableMapping[str, Any]) -> str | None:
        """Why ``Host`` does not name this server, or None when it does."""
        raw = _header(scope, b"host")
        if raw is None:
            return "the request has no Host header"
        parsed = host_and_port(raw)
        if parsed is not None:
            name, port = parsed
            if (name, None) in self._hosts or parsed in self._hosts:
                return None
            server = scope.get("server")
            here = server[0] if server else None
            if is_loopback(name) or (here is not None and _same_address(name, here)):
                arrived = server[1] if server and len(server) > 1 else None
                if port is None:
                    port = _DEFAULT_PORTS.get(str(scope.get("scheme", "http")))
                if arrived is None or port == arrived:
                    return None
        return (f"the Host header {raw[:100]!r} does not name this server (a loopback name "
                f"or this address at this port, or one of allowed_hosts — "
                f"PATCHWIRE_ALLOWED_HOSTS)")

    def _cross_site(self, scope: MutableMapping[str, Any], method: str) -> tuple[str, str] | None:
        """(title, why) when another site's page sent the request, else None."""
        origin = _header(scope, b"origin")
        if origin is not None and not same_origin(scope):
            return ("Invalid Origin header",
                    f"a cross-site request: it comes from a page of {origin[:100]!r}, not of "
                    f"this server ({_own_origin(scope)})")
        if method not in _SAFE_METHODS:
            fetch_site = _header(scope, b"sec-fetch-site")
            if fetch_site is not None and fetch_site.lower() not in _OWN_FETCH_SITES:
                return ("Cross-site request refused",
                        f"a cross-site request (Sec-Fetch-Site: {fetch_site[:20]!r}): only "
                        "this server's own pages may change something")
        return None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path = scope.get("path", "/")
        if any(rule.matches(method, path) for rule in self._exempt):
            await self.app(scope, receive, send)
            return

        async def framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {bytes(k).lower() for k, _ in message.get("headers") or ()}
                extra = [h for h in _NO_FRAMING if h[0] not in present]
                if extra:
                    message = {**message, "headers": [*(message.get("headers") or ()),
                                                      *extra]}
            await send(message)

        why = self._foreign_host(scope)
        if why is not None:
            AUTH_FAILURES.labels("foreign_host").inc()
            await _problem(framed, 421, "Invalid Host header", why, "invalid_host")
            return
        refused = self._cross_site(scope, method)
        if refused is not None:
            AUTH_FAILURES.labels("cross_origin").inc()
            await _problem(framed, 403, refused[0], refused[1], "cross_origin")
            return
        await self.app(scope, receive, framed)


def _unspecified(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_unspecified
    except ValueError:
        return False


def _same_address(name: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(name) == ipaddress.ip_address(address)
    except ValueError:
        return False


# -- dashboard login -------------------------------------------------------------------------

_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Patchwire: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;font-family:monospace;box-sizing:border-box}}
button{{margin-top:.75rem;padding:.5rem 1rem}}.error{{color:#b00020}}</style></head>
<body><h1>Patchwire</h1><p>This server needs an API key (<code>patchwire keys create NAME
--scope read</code>). It is kept in an HttpOnly cookie of this browser for 12 hours.</p>
{error}<form method="post" action="/auth/login"><input type="hidden" name="next"
value="{next}"><label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="off" placeholder="pwk_..." autofocus
required><button type="submit">Sign in</button></form></body></html>
"""


#: what a ``next`` path is sent as: printable ASCII as it is, anything else percent-encoded
_NEXT_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F))


def _unsafe_in_url(char: str) -> bool:
    # Browsers drop tabs and line breaks from URLs ("/\t/evil.example" is "//evil.example")
    # and CR/LF would split the Location header; control, format (bidi) and space
    # characters have no place in a path we redirect to.
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def _safe_next(value: str | None) -> str:
    """Where a login sends the browser: a path on this server, else ``/``. It must start with
    a single ``/`` (``//host`` and ``/\\host`` name another host, ``https:`` and
    ``javascript:`` are not paths) and hold no backslash, control character or whitespace —
    percent-encoded or not, as a browser or a proxy may decode it."""
    if not value or not value.startswith("/"):
        return "/"
    for text in (value, unquote(value)):
        if (text.startswith("//") or "\\" in text
                or any(_unsafe_in_url(c) for c in text)):
            return "/"
    return quote(value, safe=_NEXT_SAFE)  # a header value is Latin-1: encode the rest


def _cookie_header(value: str, *, secure: bool, max_age: int) -> str:
    return (f"{KEY_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
            + ("; Secure" if secure else ""))


def auth_routes(ring: KeyRing, limiter: FailedAuthLimiter) -> list[Any]:
    """``GET /auth/login`` (a minimal form), ``POST /auth/login`` (form or JSON ``{"key"}``:
    sets the cookie) and ``POST /auth/logout``, sharing the middleware's key ring and
    failed-authentication limiter."""
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    async def login_form(request: Request) -> Response:
        nxt = html.escape(_safe_next(request.query_params.get("next")), quote=True)
        return HTMLResponse(_LOGIN_PAGE.format(error="", next=nxt))

    async def login(request: Request) -> Response:
        client = _client(request.scope)
        is_json = "json" in request.headers.get("content-type", "")
        body = await request.body()
        if len(body) > 4096:
            return JSONResponse({"detail": "request too large"}, 413)
        fields: dict[str, Any]
        if is_json:
            try:
                fields = dict(orjson.loads(body or b"{}"))
            except (orjson.JSONDecodeError, TypeError, ValueError):
                fields = {}
        else:
            fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        nxt = _safe_next(str(fields.get("next") or "/"))
        # a login posted by another site's page (or with Origin: null) never gets here:
        # SiteGuard refuses it in front of every route
        key = str(fields.get("key") or "").strip()
        record = await ring.verify(key) if key else None
        wait = limiter.retry_after(client) if record is None else None
        if wait is not None:  # only wrong keys are turned away (FailedAuthLimiter)
            AUTH_FAILURES.labels("rate_limited").inc()
            return JSONResponse({"detail": "too many failed attempts"}, 429,
                                headers={"Retry-After": str(max(1, round(wait + 0.5)))})
        if record is None:
            limiter.fail(client)
            AUTH_FAILURES.labels("invalid").inc()
            if is_json:
                return JSONResponse({"detail": "the API key is not valid"}, 401)
            page = _LOGIN_PAGE.format(error='<p class="error">That key is not valid.</p>',
                                      next=html.escape(nxt, quote=True))
            return HTMLResponse(page, 401)
        cookie = _cookie_header(key, secure=request.url.scheme == "https",
                                max_age=COOKIE_MAX_AGE)
        ring.touch(record.id)
        if is_json:
            return JSONResponse({"key_id": record.id, "name": record.name,
                                 "scopes": list(record.scopes)},
                                headers={"Set-Cookie": cookie})
        return Response(status_code=303, headers={"Location": nxt, "Set-Cookie": cookie})

    async def logout(request: Request) -> Response:
        cookie = _cookie_header("", secure=request.url.scheme == "https", max_age=0)
        if "json" in request.headers.get("content-type", "") or "json" in request.headers.get(
                "accept", ""):
            return Response(status_code=204, headers={"Set-Cookie": cookie})
        return Response(status_code=303, headers={"Location": "/auth/login",
                                                  "Set-Cookie": cookie})

    return [Route("/auth/login", login_form, methods=["GET"]),
            Route("/auth/login", login, methods=["POST"]),
            Route("/auth/logout", logout, methods=["POST"])]


async def admin_key_exists(database_url: str) -> bool:
    """Whether the store at ``database_url`` holds an active admin key (``serve`` binds a
    non-loopback address only then)."""
    from patchwire.store import Store

    async with await Store.open(database_url) as store:
        return await KeyRepository(store).has_admin_key()
