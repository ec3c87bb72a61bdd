"""The dashboard's login: ``GET /auth/login`` (a minimal form), ``POST /auth/login``
(sets the HttpOnly key cookie) and ``POST /auth/logout``."""

from __future__ import annotations

import html
import unicodedata
from typing import Any, Final
from urllib.parse import parse_qs, quote, unquote

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from patchwire.observability import AUTH_FAILURES

from ._asgi import client_of
from ._limiter import FailedAuthLimiter
from ._middleware import KEY_COOKIE
from ._ring import KeyRing
from ._scopes import PUBLIC, declare

__all__ = ["COOKIE_MAX_AGE", "auth_routes", "safe_next"]

#: how long the dashboard cookie lasts (a working day and a half)
COOKIE_MAX_AGE = 12 * 3600

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


def safe_next(value: str | None) -> str:
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


def auth_routes(ring: KeyRing, limiter: FailedAuthLimiter) -> list[BaseRoute]:
    """``GET /auth/login`` (a minimal form), ``POST /auth/login`` (form or JSON ``{"key"}``:
    sets the cookie) and ``POST /auth/logout``, sharing the middleware's key ring and
    failed-authentication limiter."""
    async def login_form(request: Request) -> Response:
        nxt = html.escape(safe_next(request.query_params.get("next")), quote=True)
        return HTMLResponse(_LOGIN_PAGE.format(error="", next=nxt))

    async def login(request: Request) -> Response:
        client = client_of(request.scope)
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
        nxt = safe_next(str(fields.get("next") or "/"))
        # a login posted by another site's page (or with Origin: null) never gets here:
        # SiteGuard refuses it in front of every route (access/_site.py's one rule)
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

    # needed before there is a cookie: public
    return [declare(Route("/auth/login", login_form, methods=["GET"]), PUBLIC),
            declare(Route("/auth/login", login, methods=["POST"]), PUBLIC),
            declare(Route("/auth/logout", logout, methods=["POST"]), PUBLIC)]
