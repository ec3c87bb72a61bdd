"""An OAuth2 authorization server for tests and the demo, mounted under ``/oauth``.

Routes:

* ``GET /oauth/authorize`` — auto-approves (or, with ``auto_approve=False``, shows a
  consent page whose Approve and Deny buttons send the request again with ``approve=1``
  or ``approve=0``) and redirects to ``redirect_uri`` with ``code`` and ``state``;
  ``code_challenge`` with method ``S256`` (or ``plain``) binds the code to a verifier.
* ``POST /oauth/token`` — ``authorization_code`` (PKCE checked), ``client_credentials``
  and ``refresh_token``; clients authenticate with HTTP Basic or body ``client_id`` /
  ``client_secret`` (a public client, one without a secret, must use PKCE).
* ``GET /oauth/userinfo`` — a protected resource: 401 ``invalid_token`` for expired,
  revoked or unknown bearer tokens (RFC 6750 §3.1).
* ``GET /oauth/stats`` — the counters below as JSON.

Knobs (attributes of :class:`OAuthServer`, reachable as ``sandbox.state.oauth``):
``access_token_ttl`` (seconds), ``rotate_refresh_tokens`` (each refresh returns a new
refresh token; presenting a used one revokes its whole family, as providers with reuse
detection do), ``issue_refresh_tokens``, ``clock`` (epoch seconds; tests install a fake),
``fail_refresh`` (answer every refresh with ``invalid_grant``), ``refresh_gate`` (an
:class:`asyncio.Event` each refresh waits on before answering, so tests can pile up
concurrent callers deterministically; ``refresh_arrived`` is set when one is waiting).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from aiohttp import web

from ._responses import dumps

__all__ = ["OAUTH_CLIENTS", "OAuthServer", "OAuthStats"]

PREFIX = "/oauth"

OAUTH_CLIENTS: dict[str, str | None] = {
    "patchwire-sandbox": "sandbox-client-secret",
    "patchwire-public": None,
}
"""Client ids the sandbox accepts and their secrets (None: a public client, PKCE only)."""

_CODE_TTL = 600.0


@dataclass
class OAuthStats:
    token_requests: Counter[str] = field(default_factory=Counter)
    """Token requests received, by grant type (whatever their outcome)."""
    refreshes: int = 0
    """Successful refresh_token grants."""
    refresh_reuse: int = 0
    """Rotated-away refresh tokens presented again (each revoked its family)."""
    userinfo: Counter[int] = field(default_factory=Counter)
    """``/oauth/userinfo`` answers by status."""

    def to_json(self) -> dict[str, Any]:
        return {"token_requests": dict(self.token_requests), "refreshes": self.refreshes,
                "refresh_reuse": self.refresh_reuse,
                "userinfo": {str(k): v for k, v in sorted(self.userinfo.items())}}


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    method: str
    expires_at: float


@dataclass
class _Access:
    client_id: str
    scope: str
    expires_at: float
    family: str | None


@dataclass
class _Refresh:
    client_id: str
    scope: str
    family: str
    used: bool = False


class _OAuthProblem(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> web.Response:
        headers = {"Cache-Control": "no-store"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="oauth"'
        return web.Response(
            body=dumps({"error": self.error, "error_description": self.description}),
            status=self.status, headers=headers, content_type="application/json",
        )


class OAuthServer:
    """In-memory authorization server state; :meth:`routes` serves it under ``/oauth``."""

    def __init__(
        self,
        *,
        clients: dict[str, str | None] | None = None,
        access_token_ttl: float = 3600.0,
        rotate_refresh_tokens: bool = False,
        auto_approve: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = dict(OAUTH_CLIENTS if clients is None else clients)
        self.access_token_ttl = access_token_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.issue_refresh_tokens = True
        self.auto_approve = auto_approve
        self.fail_refresh = False
        self.refresh_gate: asyncio.Event | None = None
        self.refresh_arrived = asyncio.Event()
        self.clock = clock
        self.stats = OAuthStats()
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._revoked_families: set[str] = set()

    def __repr__(self) -> str:
        return (f"OAuthServer(ttl={self.access_token_ttl!r}, "
                f"rotate={self.rotate_refresh_tokens!r}, clients={sorted(self.clients)!r})")

    def reset(self) -> None:
        self._codes.clear()
        self._access.clear()
        self._refresh.clear()
        self._revoked_families.clear()
        self.stats = OAuthStats()
        self.refresh_arrived = asyncio.Event()

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired now (simulates time passing)."""
        for token in self._access.values():
            token.expires_at = min(token.expires_at, self.clock() - 1)

    def revoke_family_of(self, refresh_token: str) -> None:
        rec = self._refresh.get(refresh_token)
        if rec is not None:
            self._revoked_families.add(rec.family)

    # -- routes ----------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{PREFIX}/authorize", self._authorize),
            web.post(f"{PREFIX}/token", self._token),
            web.get(f"{PREFIX}/userinfo", self._userinfo),
            web.get(f"{PREFIX}/stats", self._stats),
        ]

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=dumps(self.stats.to_json()), content_type="application/json")

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        client_id = q.get("client_id", "")
        redirect_uri = q.get("redirect_uri", "")
        if client_id not in self.clients:
            return _page(400, "unknown client_id")
        if not _loopback_or_https(redirect_uri):
            # never redirect to an unvetted URI: that is how codes get stolen
            return _page(400, "redirect_uri must be https or a loopback http URL")
        state = q.get("state")
        if q.get("response_type") != "code":
            return _redirect(redirect_uri, error="unsupported_response_type", state=state)
        challenge = q.get("code_challenge")
        method = q.get("code_challenge_method", "plain")
        if challenge is not None and method not in ("S256", "plain"):
            return _redirect(redirect_uri, error="invalid_request", state=state)
        if challenge is None and self.clients[client_id] is None:
            return _redirect(redirect_uri, error="invalid_request", state=state,
                             error_description="public clients must use PKCE")
        if not self.auto_approve and q.get("approve") != "1":
            if q.get("approve") == "0":
                return _redirect(redirect_uri, error="access_denied", state=state)
            return _consent(client_id, q.items())
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(client_id, redirect_uri, q.get("scope", ""), challenge,
                                  method, self.clock() + _CODE_TTL)
        return _redirect(redirect_uri, code=code, state=state)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        self.stats.token_requests[grant or "missing"] += 1
        try:
            client_id = self._client(request, {k: str(v) for k, v in form.items()})
            if grant == "authorization_code":
                body = self._grant_code(client_id, form)
            elif grant == "client_credentials":
                if self.clients[client_id] is None:
                    raise _OAuthProblem(400, "unauthorized_client",
                                        "public clients cannot use client_credentials")
                body = self._issue(client_id, str(form.get("scope", "")), family=None)
            elif grant == "refresh_token":
                self.refresh_arrived.set()
                if self.refresh_gate is not None:
                    await self.refresh_gate.wait()
                body = self._grant_refresh(client_id, form)
            else:
                raise _OAuthProblem(400, "unsupported_grant_type", "unsupported grant_type")
        except _OAuthProblem as exc:
            return exc.response()
        return web.Response(body=dumps(body), content_type="application/json",
                            headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _client(self, request: web.Request, form: dict[str, str]) -> str:
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                pair = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise _OAuthProblem(401, "invalid_client", "malformed Basic credentials") \
                    from None
            raw_id, _, raw_secret = pair.partition(":")
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if client_id not in self.clients:
            raise _OAuthProblem(401, "invalid_client", "unknown client")
        expected = self.clients[client_id]
        if expected is not None and not secrets.compare_digest(secret, expected):
            raise _OAuthProblem(401, "invalid_client", "client authentication failed")
        return client_id

    def _grant_code(self, client_id: str, form: Any) -> dict[str, Any]:
        code = self._codes.pop(str(form.get("code", "")), None)  # single use
        if code is None or code.client_id != client_id or code.expires_at < self.clock():
            raise _OAuthProblem(400, "invalid_grant", "unknown, used or expired code")
        if str(form.get("redirect_uri", "")) != code.redirect_uri:
            raise _OAuthProblem(400, "invalid_grant", "redirect_uri does not match")
        if code.challenge is not None:
            verifier = str(form.get("code_verifier", ""))
            if not verifier:
                raise _OAuthProblem(400, "invalid_grant", "code_verifier is required")
            computed = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .decode("ascii").rstrip("=")
                if code.method == "S256" else verifier
            )
            if not secrets.compare_digest(computed, code.challenge):
                raise _OAuthProblem(400, "invalid_grant", "code_verifier does not match")
        return self._issue(client_id, code.scope, family=secrets.token_hex(8))

    def _grant_refresh(self, client_id: str, form: Any) -> dict[str, Any]:
        if self.fail_refresh:
            raise _OAuthProblem(400, "invalid_grant", "refresh token revoked")
        presented = str(form.get("refresh_token", ""))
        rec = self._refresh.get(presented)
        if rec is None or rec.client_id != client_id or rec.family in self._revoked_families:
            raise _OAuthProblem(400, "invalid_grant", "unknown or revoked refresh token")
        if rec.used:
            # reuse of a rotated-away token: someone else holds a copy, revoke them all
            self.stats.refresh_reuse += 1
            self._revoked_families.add(rec.family)
            raise _OAuthProblem(400, "invalid_grant", "refresh token reused; family revoked")
        self.stats.refreshes += 1
        if self.rotate_refresh_tokens:
            rec.used = True
            return self._issue(client_id, rec.scope, family=rec.family)
        # without rotation the old refresh token stays valid and none is sent back
        return self._issue(client_id, rec.scope, family=rec.family, with_refresh=False)

    def _issue(
        self, client_id: str, scope: str, *, family: str | None, with_refresh: bool = True
    ) -> dict[str, Any]:
        access = "at_" + secrets.token_urlsafe(24)
        self._access[access] = _Access(client_id, scope, self.clock() + self.access_token_ttl,
                                       family)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                "expires_in": int(self.access_token_ttl)}
        if scope:
            body["scope"] = scope
        if family is not None and with_refresh and self.issue_refresh_tokens:
            refresh = "rt_" + secrets.token_urlsafe(24)
            self._refresh[refresh] = _Refresh(client_id, scope, family)
            body["refresh_token"] = refresh
        return body

    async def _userinfo(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        rec = self._access.get(token.strip()) if scheme.lower() == "bearer" else None
        if rec is None or rec.expires_at <= self.clock() or (
            rec.family is not None and rec.family in self._revoked_families
        ):
            self.stats.userinfo[401] += 1
            challenge = 'Bearer realm="oauth"'
            if token:
                challenge += ', error="invalid_token"'
            return web.Response(
                body=dumps({"error": "invalid_token", "error_description":
                            "missing, expired or revoked access token"}),
                status=401, content_type="application/json",
                headers={"WWW-Authenticate": challenge},
            )
        self.stats.userinfo[200] += 1
        return web.Response(
            body=dumps({"sub": "user_1", "client_id": rec.client_id, "scope": rec.scope,
                        "name": "Sandbox User", "email": "user@example.com"}),
            content_type="application/json",
        )


def _loopback_or_https(uri: str) -> bool:
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _redirect(uri: str, **params: str | None) -> web.StreamResponse:
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    raise web.HTTPFound(urlunsplit(parts._replace(query=query)))


def _consent(client_id: str, query: Iterable[tuple[str, str]]) -> web.StreamResponse:
    """The consent page a person answers in a browser: a GET form sending the same
    authorization request back with the button's ``approve`` (no JavaScript needed)."""
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                     for k, v in query if k != "approve")
    html = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            "<title>Grant access</title></head><body>"
            f"<h1>Grant {escape(client_id)} access?</h1>"
            f'<form method="get" action="{PREFIX}/authorize">{hidden}'
            '<button type="submit" name="approve" value="1">Approve</button> '
            '<button type="submit" name="approve" value="0">Deny</button>'
            "</form></body></html>")
    return web.Response(text=html, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


def _page(status: int, text: str) -> web.StreamResponse:
    return web.Response(text=text, status=status, content_type="text/plain")
