"""The key check in front of the app: API keys with scopes, by header or by the dashboard's
cookie.

When keys are checked (:class:`AccessPolicy`):

- The server started on a non-loopback address (``require_keys``): always. ``patchwire
  serve`` refuses such a bind unless an admin-capable key exists, and if every key is
  revoked later, every request is refused rather than the server becoming open.
- On loopback: as soon as the store holds an active key (created keys mean "protect
  this"); with none, everything behaves as before there were keys.

Which scope a request needs, its route declares (``access/_scopes.py``): ``/healthz``,
webhooks (verified by their signatures), the login routes and the dashboard's assets are
public; everything else — ``/api/*``, ``/mcp``, ``/metrics``, the dashboard — needs a key,
by header (``Authorization: Bearer pwk_...`` or ``X-API-Key``) or, for browsers, the
``patchwire_key`` cookie set by ``POST /auth/login`` (HttpOnly, SameSite=Strict; a change
made with it must also come from this server's own pages: ``access/_site.py``). The
``admin`` scope allows everything. Failed authentication is rate limited per client address
(10 per minute, then 429 with ``Retry-After`` for wrong keys; valid keys from that address
still work).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Send

from patchwire.errors import PatchwireError
from patchwire.observability import AUTH_FAILURES
from patchwire.store.end_users import END_USER_TOKEN_PREFIX
from patchwire.store.keys import KeyRepository

from ._asgi import client_of, cookie, header, redirect, send_problem
from ._end_user_ring import EndUserTokenRing
from ._limiter import FailedAuthLimiter
from ._ring import KeyRing
from ._scopes import PUBLIC, Access, required_access
from ._site import cross_site

if TYPE_CHECKING:
    from patchwire.store import Store

__all__ = ["KEY_COOKIE", "AccessPolicy", "ApiKeyMiddleware", "admin_key_exists",
           "presented_key"]

log = logging.getLogger("patchwire.auth")

KEY_COOKIE: Final = "patchwire_key"


@dataclass
class AccessPolicy:
    """How the app checks keys. ``require_keys``: always (a non-loopback bind), else only
    once the store holds an active key. ``cache_ttl``: see :class:`KeyRing`."""

    require_keys: bool = False
    cache_ttl: float = 1.0
    max_failures: int = 10
    failure_window: float = 60.0


def presented_key(scope: MutableMapping[str, Any]) -> tuple[str | None, bool]:
    """(the key a request presents, whether it came from the dashboard cookie)."""
    auth = header(scope, b"authorization")
    if auth:
        kind, _, value = auth.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip(), False
    given = header(scope, b"x-api-key")
    if given:
        return given.strip(), False
    found = cookie(scope, KEY_COOKIE)
    return (found, True) if found else (None, False)


def _wants_page(scope: MutableMapping[str, Any], method: str, path: str) -> bool:
    """A person's browser asking for a dashboard page (redirected to the login form)."""
    if method != "GET" or path.startswith(("/api/", "/mcp", "/metrics")):
        return False
    return "text/html" in (header(scope, b"accept") or "")


class ApiKeyMiddleware:
    """Checks API keys in front of ``app`` (pure ASGI: streaming responses such as MCP's
    event stream pass through untouched), against the scope declared by the route of
    ``router`` the request goes to."""

    def __init__(self, app: ASGIApp, *, router: Router, store: Callable[[], Store],
                 policy: AccessPolicy | None = None, ring: KeyRing | None = None,
                 limiter: FailedAuthLimiter | None = None,
                 end_users: EndUserTokenRing | None = None) -> None:
        self.app = app
        self.router = router
        self.policy = policy or AccessPolicy()
        self.ring = ring or KeyRing(store, ttl=self.policy.cache_ttl)
        self.end_users = end_users or EndUserTokenRing(store, ttl=self.policy.cache_ttl)
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
        # the routes as they are now (the router reads the same list)
        needed, for_end_users = required_access(self.router.routes, scope)
        if needed == PUBLIC:
            await self.app(scope, receive, send)
            return
        text, via_cookie = presented_key(scope)
        if text is not None and not via_cookie and text.startswith(END_USER_TOKEN_PREFIX):
            # an end user's token is checked whether or not keys are: it narrows, always
            await self._as_end_user(scope, receive, send, text, needed, for_end_users)
            return
        try:
            enforced = await self.enforced()
        except PatchwireError:
            # the store cannot say whether keys exist: refuse rather than guess open
            log.exception("cannot read API keys; refusing %s %s", method, path)
            await send_problem(send, 503, "Service unavailable", "API keys cannot be "
                               "checked right now (the store is unavailable)", "store_error")
            return
        if not enforced:
            scope.setdefault("state", {})["access"] = Access(None)
            await self.app(scope, receive, send)
            return
        client = client_of(scope)
        # the key first: a valid one is served even while the address is limited
        record = await self.ring.verify(text) if text is not None else None
        wait = self.limiter.retry_after(client) if record is None else None
        if wait is not None:
            await _too_many_failures(send, client, wait, "API keys")
            return
        if text is None:
            AUTH_FAILURES.labels("missing").inc()
            if _wants_page(scope, method, path):
                query = scope.get("query_string", b"").decode("latin-1")
                target = path + (f"?{query}" if query else "")
                await redirect(send, f"/auth/login?next={quote(target, safe='')}")
                return
            await send_problem(send, 401, "Unauthorized", "this server needs an API key: "
                               "send 'Authorization: Bearer pwk_...' (create one with "
                               "`patchwire keys create NAME --scope read`)", "unauthorized",
                               [("www-authenticate", 'Bearer realm="patchwire"')])
            return
        if record is None:
            self.limiter.fail(client)
            await _invalid(send, "the API key is not valid (unknown, revoked or mistyped)",
                           "invalid_api_key")
            return
        if not record.allows(needed):
            AUTH_FAILURES.labels("scope").inc()
            await send_problem(send, 403, "Forbidden", f"{method} {path} needs the "
                               f"{needed!r} scope; key {record.id} ({record.name}) has "
                               f"{', '.join(record.scopes)}", "insufficient_scope",
                               [("www-authenticate", 'Bearer realm="patchwire", '
                                 f'error="insufficient_scope", scope="{needed}"')])
            return
        if via_cookie:
            # the same rule as SiteGuard's, stricter for the cookie a browser sends
            # whatever page asks (SameSite=Strict is the first guard, this the second)
            refused = cross_site(scope, method, by_cookie=True)
            if refused is not None:
                AUTH_FAILURES.labels("cross_origin").inc()
                await send_problem(send, 403, refused[0], refused[1], "cross_origin")
                return
        state = scope.setdefault("state", {})
        state["access"] = Access(record)
        state["api_key"] = record
        self.ring.touch(record.id)
        await self.app(scope, receive, send)

    async def _as_end_user(self, scope: MutableMapping[str, Any], receive: Receive,
                           send: Send, text: str, needed: str, for_end_users: bool) -> None:
        method, path = scope.get("method", "GET"), scope.get("path", "/")
        client = client_of(scope)
        try:
            token = await self.end_users.verify(text)
        except PatchwireError:
            log.exception("cannot read end-user tokens; refusing %s %s", method, path)
            await send_problem(send, 503, "Service unavailable", "end-user tokens cannot be "
                               "checked right now (the store is unavailable)", "store_error")
            return
        wait = self.limiter.retry_after(client) if token is None else None
        if wait is not None:
            await _too_many_failures(send, client, wait, "tokens")
            return
        if token is None:
            self.limiter.fail(client)
            await _invalid(send, "the end-user token is not valid (unknown, expired, revoked "
                           "or mistyped)", "invalid_token")
            return
        access = Access(None, end_user=token.end_user, token_id=token.id)
        if not access.allows(needed, end_users=for_end_users):
            # what an end user may not use does not exist for them (no enumeration)
            await send_problem(send, 404, "Not Found", f"nothing at {path}", "not_found")
            return
        scope.setdefault("state", {})["access"] = access
        await self.app(scope, receive, send)


async def _too_many_failures(send: Send, client: str, wait: float, what: str) -> None:
    AUTH_FAILURES.labels("rate_limited").inc()
    await send_problem(send, 429, "Too many failed authentications",
                       f"too many requests with invalid {what} from {client}; retry in "
                       f"{wait:.0f}s", "auth_rate_limited",
                       [("retry-after", str(max(1, round(wait + 0.5))))])


async def _invalid(send: Send, detail: str, code: str) -> None:
    AUTH_FAILURES.labels("invalid").inc()
    await send_problem(send, 401, "Unauthorized", detail, code,
                       [("www-authenticate", 'Bearer realm="patchwire", error="invalid_token"')])


async def admin_key_exists(database_url: str) -> bool:
    """Whether the store at ``database_url`` holds an active admin key (``serve`` binds a
    non-loopback address only then)."""
    from patchwire.store import Store

    async with await Store.open(database_url) as store:
        return await KeyRepository(store).has_admin_key()
