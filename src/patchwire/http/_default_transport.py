"""The core's transport unless one is injected: the kept-alive wire for the requests it
takes, aiohttp for the rest.

The rule, decided before anything is sent: a request goes over the wire when
:meth:`~patchwire.http._wire.WireTransport.frame` frames it (http(s), a body absent or
bytes, no cookies, not ``HEAD``, headers written as aiohttp would write them, no client
certificate), otherwise through aiohttp. Both share one SSRF guard and one DNS source (the
wire resolves through the aiohttp connector's guarded resolver) and one connection limit
each.
"""

from __future__ import annotations

from aiohttp.abc import AbstractResolver

from patchwire.http._aiohttp import AiohttpTransport
from patchwire.http._ssrf import DestinationPolicy
from patchwire.http._transport import Limits, PreparedRequest, RawResponse
from patchwire.http._wire import WirePool, WireTransport

__all__ = ["DefaultTransport"]


class DefaultTransport:
    """The wire where it applies, aiohttp elsewhere; ``wire=False`` sends everything
    through aiohttp (the reference path ``bench/call_overhead.py`` compares)."""

    def __init__(self, destinations: DestinationPolicy, *, limit: int = 256,
                 resolver: AbstractResolver | None = None, wire: bool = True) -> None:
        self.aiohttp = AiohttpTransport(destinations, limit=limit, resolver=resolver)
        self.use_wire = wire
        self._limit = limit
        self._wire: WireTransport | None = None

    @property
    def wire(self) -> WireTransport:
        wire = self._wire
        if wire is None:
            # one SSRF policy and one DNS source for both transports
            wire = self._wire = WireTransport(
                WirePool(self.aiohttp.connector.guarded_resolver, limit=self._limit))
        return wire

    async def handle(self, request: PreparedRequest, limits: Limits) -> RawResponse:
        if self.use_wire:
            wire = self.wire
            frame = wire.frame(request)
            if frame is not None:
                return await wire.pool.exchange(frame, limits)
        return await self.aiohttp.handle(request, limits)

    async def aclose(self) -> None:
        if self._wire is not None:
            await self._wire.aclose()
            self._wire = None
        await self.aiohttp.aclose()
