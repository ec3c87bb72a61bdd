"""What the access checks read from an ASGI request and how they answer it: pure ASGI, so
they run in front of every route (streaming ones such as MCP's event stream included)."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Final, cast

import orjson
from starlette.types import Send

__all__ = ["SAFE_METHODS", "client_of", "cookie", "header", "redirect", "send_problem"]

#: methods that change nothing
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def header(scope: MutableMapping[str, Any], name: bytes) -> str | None:
    """The first value of header ``name`` (lowercase), or None."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return cast(bytes, value).decode("latin-1")
    return None


def cookie(scope: MutableMapping[str, Any], name: str) -> str | None:
    raw = header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def client_of(scope: MutableMapping[str, Any]) -> str:
    # The peer address. Behind a reverse proxy this is the proxy's: run uvicorn with
    # --proxy-headers (and --forwarded-allow-ips) so it becomes the real client's.
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def send_problem(send: Send, status: int, title: str, detail: str, code: str,
                       headers: Iterable[tuple[str, str]] = ()) -> None:
    """An RFC 9457 problem, in the shape of the API's other errors."""
    body = orjson.dumps({"type": f"https://patchwire.dev/errors/{code}", "title": title,
                         "status": status, "detail": detail})
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in headers)]})
    await send({"type": "http.response.body", "body": body})


async def redirect(send: Send, location: str, set_cookie: str | None = None) -> None:
    headers = [(b"location", location.encode()), (b"content-length", b"0")]
    if set_cookie is not None:
        headers.append((b"set-cookie", set_cookie.encode()))
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
