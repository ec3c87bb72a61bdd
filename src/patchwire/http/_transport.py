"""The transport boundary of the HTTP core: what one request and its answer are, the limits
every exchange is held to, and the interface a transport implements (as httpx's
``AsyncBaseTransport.handle_async_request``).

A transport sends one request and returns one answer: no retries, no redirects followed
(the core follows them, so every hop goes through the same rule, the same SSRF guard and
the same limits), no rate limits. The core picks the transport, maps its failures to
Patchwire's errors in one place (``_client.py``: ``map_transport_error``) and enforces the
limits it can check on any answer (the body's size, the status range) once more after the
transport, so an injected transport (:class:`~patchwire.http.MockTransport`) is held to
them too.

Failures a transport raises, whatever it is (the vocabulary of aiohttp, which both of the
built-in transports speak so that the retry policy treats them alike):

* ``TimeoutError`` — no complete answer within the limits' timeouts (retried);
* ``aiohttp.ClientConnectionError`` and subclasses — the connection could not be opened or
  broke (retried when the request may be repeated);
* ``aiohttp.ClientPayloadError`` / ``aiohttp.ClientResponseError`` — the answer could not
  be read or is refused (not retried);
* :class:`~patchwire.http.DestinationRefused` — the SSRF guard refused the address.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

import aiohttp
from multidict import CIMultiDictProxy

__all__ = ["MAX_HEADERS", "MAX_HEADER_BYTES", "REDIRECTS", "Limits", "PreparedRequest",
           "RawResponse", "Transport", "bad_status", "body_too_large"]

#: a response's header section may not exceed these, on every transport: an upstream
#: streaming endless headers is cut off instead of filling memory
MAX_HEADER_BYTES: Final = 64 * 1024
MAX_HEADERS: Final = 256
#: statuses the core follows as redirects
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


@dataclass(slots=True)
class PreparedRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] | None = None
    cookies: dict[str, str] | None = None
    json: Any = None
    data: Any = None  # form fields (dict) or aiohttp.FormData
    idempotent: bool = True
    #: names (lower case) of the headers that carry the connection's credentials: a
    #: redirect to another origin drops them, as it drops Authorization and cookies
    credentials: frozenset[str] = frozenset()
    #: mutual TLS: the context presenting the connection's client certificate (None: no
    #: client certificate). Such a request goes through aiohttp, whose pool keys on it.
    tls: ssl.SSLContext | None = None


@dataclass(slots=True)
class RawResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    @property
    def ok(self) -> bool:
        return self.status < 400


@dataclass(frozen=True, slots=True)
class Limits:
    """What one exchange may take. ``timeout``: connect (new connections), total (the whole
    exchange) and sock_read (the longest gap between reads). ``max_body``: bytes of the
    body, decoded (a gzip bomb stops there); a longer body fails the exchange, or with
    ``truncate`` its first ``max_body`` bytes are kept and the connection is dropped."""

    timeout: aiohttp.ClientTimeout
    max_body: int | None = None
    truncate: bool = False

    def within(self, total: float) -> Limits:
        """These limits with ``total`` seconds left of the total timeout (a redirect's
        next hop: the total covers the whole chain)."""
        t = self.timeout
        return Limits(aiohttp.ClientTimeout(total=total, connect=t.connect,
                                            sock_read=t.sock_read,
                                            sock_connect=t.sock_connect,
                                            ceil_threshold=t.ceil_threshold),
                      self.max_body, self.truncate)


@runtime_checkable
class Transport(Protocol):
    """Sends one request, returns its answer; see the module docstring for the failures
    it raises. ``limits`` bind the exchange (a transport that does not time or count,
    like a mock, may ignore them: the core checks the body's size after it)."""

    async def handle(self, request: PreparedRequest, limits: Limits) -> RawResponse: ...

    async def aclose(self) -> None: ...


def body_too_large(limit: int) -> aiohttp.ClientPayloadError:
    """The failure of an answer whose body is longer than ``limit`` bytes (decoded)."""
    return aiohttp.ClientPayloadError(
        f"the response body is larger than {limit} bytes (max_response_bytes)")


def bad_status(status: int) -> str:
    return f"the status {status} is outside 100-599"
