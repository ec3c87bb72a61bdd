"""The aiohttp transport: one ``aiohttp.ClientSession`` over the SSRF-guarded connector,
for every request the kept-alive wire does not express (cookies, JSON and multipart
bodies, ``HEAD``, headers aiohttp encodes or refuses in its own way).

Redirects are not followed here (the core follows them, hop by hop); cookies belong to
connections, never to the session; the header limits are the wire's (``MAX_HEADER_BYTES``
a field, ``MAX_HEADERS`` fields) and the body is read at most to ``Limits.max_body``
decoded bytes.
"""

from __future__ import annotations

import aiohttp
from aiohttp.abc import AbstractResolver

from patchwire.http._ssrf import DestinationPolicy, GuardedConnector
from patchwire.http._transport import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    Limits,
    PreparedRequest,
    RawResponse,
    body_too_large,
)

__all__ = ["AiohttpTransport"]


class AiohttpTransport:
    """A :class:`~patchwire.http.Transport` through aiohttp; at most ``limit`` connections
    open at once. ``resolver`` replaces the DNS lookup under the SSRF guard (tests)."""

    def __init__(self, destinations: DestinationPolicy, *, limit: int = 256,
                 resolver: AbstractResolver | None = None) -> None:
        self.destinations = destinations
        self._limit = limit
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session (opened on first use, again after it was closed)."""
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession(
                # the SSRF guard checks every new connection
                connector=GuardedConnector(self.destinations, resolver=self._resolver,
                                           limit=self._limit, ttl_dns_cache=300),
                auto_decompress=True,
                raise_for_status=False,
                # cookies belong to connections, never to the shared session
                cookie_jar=aiohttp.DummyCookieJar(),
                max_line_size=MAX_HEADER_BYTES,
                max_field_size=MAX_HEADER_BYTES,
                max_headers=MAX_HEADERS,
            )
        return session

    @property
    def connector(self) -> GuardedConnector:
        connector = self.session.connector
        assert isinstance(connector, GuardedConnector)
        return connector

    async def handle(self, request: PreparedRequest, limits: Limits) -> RawResponse:
        async with self.session.request(
            request.method,
            request.url,
            headers=request.headers,
            params=request.params,
            cookies=request.cookies,
            json=request.json if request.data is None else None,
            data=request.data,
            timeout=limits.timeout,
            allow_redirects=False,
            # a client certificate's context; aiohttp's pool keys connections on it
            ssl=request.tls if request.tls is not None else True,
        ) as resp:
            limit = limits.max_body
            if limit is None:
                body = await resp.read()
            elif limits.truncate:
                body = await resp.content.read(limit)
            else:
                body = await _read_at_most(resp, limit)
            return RawResponse(resp.status, resp.headers, body, str(resp.url))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ClientPayloadError as soon as it is longer than ``limit``."""
    if resp.content_length is not None and resp.content_length > limit:
        raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
