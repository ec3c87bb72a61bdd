"""Where a request comes from: the one same-origin rule (:func:`cross_site`) and the guard
that applies it in front of every route (:class:`SiteGuard`).

A server on loopback without keys trusts whoever reaches it, and any web page open in the
person's browser can make that browser send requests to it. What such a page can send is
refused here: a ``Host`` naming another server (DNS rebinding), an ``Origin`` of another
site, a change the browser marks as cross-site — and a change made with the dashboard's
cookie that does not show it came from one of this server's pages (a browser attaches the
cookie whatever page asks). The dashboard's forms, the login and the API all go through
this one rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, MutableMapping
from typing import Any, Final
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Send

from patchwire.config import host_and_port
from patchwire.observability import AUTH_FAILURES

from ._asgi import SAFE_METHODS, header, send_problem

__all__ = ["SiteGuard", "cross_site", "is_loopback", "own_origin"]

#: answered whatever Host and Origin say: webhooks come from upstreams, often through a
#: tunnel or proxy that keeps its own Host, and are verified by signature (webhooks/)
ANY_SITE: Final = ("/hooks/",)
#: Sec-Fetch-Site of what a page of this very origin sent, or the person typed
_OWN_FETCH_SITES: Final = frozenset({"same-origin", "none"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: on every response: no page of another site may frame this server's pages (clickjacking)
_NO_FRAMING: Final = ((b"content-security-policy", b"frame-ancestors 'none'"),
                      (b"x-frame-options", b"DENY"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP address, IPv6 without brackets) is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def own_origin(scope: MutableMapping[str, Any]) -> str | None:
    """This server's origin as the request names it (scheme and ``Host``)."""
    # uvicorn takes the scheme from a trusted proxy's X-Forwarded-Proto (--proxy-headers,
    # on for 127.0.0.1 by default), so behind a TLS proxy this is https as the page's is
    host = header(scope, b"host")
    return f"{scope.get('scheme', 'http')}://{host}".lower() if host else None


def cross_site(scope: MutableMapping[str, Any], method: str, *,
               by_cookie: bool = False,
               origins: Iterable[str] = ()) -> tuple[str, str] | None:
    """The same-origin rule: (title, why) when another site's page sent the request, else
    None.

    - ``Origin``, when sent, must be this server's own scheme and ``Host`` (``null``, sent
      by sandboxed pages and after cross-site redirects, is another site) — for reads too:
      no page of another origin has a reason to call this server.
    - A request that changes something (not GET, HEAD or OPTIONS) the browser marks as
      ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` is refused, also
      ``same-site``: another port of localhost, or another subdomain, is another server.
      Without ``Origin`` and ``Sec-Fetch-Site`` the client is not a browser.
    - ``by_cookie``: the request is authenticated by the dashboard's cookie, which the
      browser sends whatever page asks; a change must then show that it comes from one of
      this server's pages, by ``Origin`` or, without one, ``Referer``.
    - ``origins``: this server's origins besides the one the request names — its public
      URL's behind a reverse proxy that rewrites ``Host`` (lower case).
    """
    mine = own_origin(scope)
    ours = {mine, *origins} - {None}
    origin = header(scope, b"origin")
    if origin is not None and _origin_of(origin) not in ours:
        return ("Invalid Origin header",
                f"a cross-site request: it comes from a page of {origin[:100]!r}, not of "
                f"this server ({mine})")
    if method in SAFE_METHODS:
        return None
    fetch_site = header(scope, b"sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in _OWN_FETCH_SITES:
        return ("Cross-site request refused",
                f"a cross-site request (Sec-Fetch-Site: {fetch_site[:20]!r}): only "
                "this server's own pages may change something")
    if by_cookie and origin is None:
        referer = header(scope, b"referer")
        if not referer or _origin_of(referer) not in ours:
            return ("Forbidden", "a request authenticated by the dashboard cookie must "
                                 "come from this server's own pages")
    return None


class SiteGuard:
    """Refuses, in front of every route (pure ASGI), what a hostile web page can make a
    browser send to a server it reaches — this one usually on loopback, open without keys:

    - ``Host`` must name this server, against DNS rebinding (a page whose name was made to
      resolve to 127.0.0.1 reaches the server with its own name in ``Host``): a loopback name
      or address, or the address the request arrived at, with the port it arrived at; or
      one of ``hosts`` (``allowed_hosts`` and the bind host: ``name`` at any port, or
      ``name:port``). Else 421.
    - What :func:`cross_site` refuses (another site's ``Origin``, a cross-site change).
      403.

    Webhooks are exempt (:data:`ANY_SITE`). Every response gets
    ``Content-Security-Policy: frame-ancestors 'none'`` and ``X-Frame-Options: DENY``.
    ``origins``: this server's own origins besides the one a request names (the public
    URL's, behind a proxy: ``https://pw.example.com``).
    """

    def __init__(self, app: ASGIApp, *, hosts: Iterable[str] = (),
                 origins: Iterable[str] = ()) -> None:
        self.app = app
        self._origins = tuple(o.lower().rstrip("/") for o in origins)
        self._hosts: set[tuple[str, int | None]] = set()
        for text in hosts:
            parsed = host_and_port(text)
            # A wildcard bind (0.0.0.0, ::) names no host, and a loopback name without a
            # port would open every local port's name: both are accepted anyway where the
            # request arrives ("localhost:9000" for a forwarded port does add something).
            if parsed is not None and not (_unspecified(parsed[0]) or (
                    is_loopback(parsed[0]) and parsed[1] is None)):
                self._hosts.add(parsed)

    def _foreign_host(self, scope: MutableMapping[str, Any]) -> str | None:
        """Why ``Host`` does not name this server, or None when it does."""
        raw = header(scope, b"host")
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

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive,
                       send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        if str(scope.get("path", "/")).startswith(ANY_SITE):
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
            await send_problem(framed, 421, "Invalid Host header", why, "invalid_host")
            return
        refused = cross_site(scope, method, origins=self._origins)
        if refused is not None:
            AUTH_FAILURES.labels("cross_origin").inc()
            await send_problem(framed, 403, refused[0], refused[1], "cross_origin")
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
