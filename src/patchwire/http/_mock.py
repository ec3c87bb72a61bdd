"""A transport that answers from a function instead of the network, for testing
connectors, flows and tools without an upstream (modelled on httpx's ``MockTransport``).

    def upstream(request: PreparedRequest) -> RawResponse:
        if request.url.endswith("/orders/42"):
            return MockTransport.json({"id": "42"})
        return MockTransport.json({"error": "no such order"}, status=404)

    http = HttpCore(transport=MockTransport(upstream))

The core treats its answers as any transport's: redirects are followed through it, a
body longer than the connector's ``max_response_bytes`` fails the call, and a handler
raising ``TimeoutError`` or ``aiohttp.ClientConnectionError`` is a timeout or connection
error, retried by the connector's policy.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from patchwire.http._transport import Limits, PreparedRequest, RawResponse

__all__ = ["MockTransport"]

Handler = Callable[[PreparedRequest], RawResponse | Awaitable[RawResponse]]


class MockTransport:
    """A :class:`~patchwire.http.Transport` whose answers come from ``handler``, a plain
    or async function of the request. ``requests`` keeps every request it was given, in
    order (redirect hops included). An answer without a ``url`` gets the request's."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[PreparedRequest] = []
        self.closed = False

    async def handle(self, request: PreparedRequest, limits: Limits) -> RawResponse:
        self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, RawResponse):
            raise TypeError(f"a MockTransport handler must answer a RawResponse, not "
                            f"{type(answer).__name__}")
        if not answer.url:  # the answer of the request's own URL unless told otherwise
            answer.url = request.url
        return answer

    async def aclose(self) -> None:
        self.closed = True

    @staticmethod
    def response(status: int = 200, body: bytes | str = b"", *,
                 headers: Mapping[str, str] | None = None, url: str = "") -> RawResponse:
        """An answer with ``body`` (text is sent as UTF-8)."""
        data = body.encode() if isinstance(body, str) else body
        return RawResponse(status, CIMultiDictProxy(CIMultiDict(headers or {})), data, url)

    @staticmethod
    def json(value: Any, status: int = 200, *, headers: Mapping[str, str] | None = None,
             url: str = "") -> RawResponse:
        """A JSON answer (``Content-Type: application/json``)."""
        return MockTransport.response(
            status, orjson.dumps(value),
            headers={"Content-Type": "application/json", **(headers or {})}, url=url)
