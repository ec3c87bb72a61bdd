"""The call path against a hostile upstream: answers crafted to desynchronise a kept-alive
connection, to exhaust memory (decompression bombs, endless headers) or to behave
differently on the two HTTP paths (``http/_wire.py`` and the aiohttp session).

Upstreams are raw-bytes asyncio servers on 127.0.0.1 (``raw_server`` of the wire tests),
so every byte an attacker would choose is on the wire as written.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from patchwire.errors import TransportError
from patchwire.http import HttpCore, PreparedRequest
from tests.http.test_wire import ok, raw_server, send


@pytest.fixture
async def http() -> AsyncIterator[HttpCore]:
    core = HttpCore(allow_networks=("127.0.0.1/32",))
    yield core
    await core.close()


SMUGGLED = {
    # a whole second response right behind the first
    "whole": b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle",
    # the head of a second response whose body would swallow the next real answer
    "head": b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\nX-Evil: yes\r\n\r\nsmuggle",
}


@pytest.mark.parametrize("tail", list(SMUGGLED))
async def test_a_second_response_behind_the_awaited_one_closes_the_connection(
    http: HttpCore, tail: str,
) -> None:
    answered = 0

    async def answer(head: bytes, n: int) -> bytes:
        nonlocal answered
        answered += 1
        if answered == 1:  # the first answer carries a second one in the same write
            return ok(b"first") + SMUGGLED[tail]
        return ok(b"real answer %d" % answered)

    async with raw_server(answer) as (url, connections):
        first = await send(http, PreparedRequest("GET", f"{url}/x"))
        second = await send(http, PreparedRequest("POST", f"{url}/y", data=b"{}",
                                                  idempotent=False))
    assert first.body == b"first"
    assert (second.status, second.body) == (200, b"real answer 2")
    assert "X-Evil" not in second.headers
    assert len(connections) == 2  # the desynchronised connection was not reused


@pytest.mark.parametrize("path", ["wire", "aiohttp"])
async def test_an_endless_header_value_fails_the_call_after_a_bounded_read(
    http: HttpCore, path: str,
) -> None:
    http.wire = path == "wire"
    sent = 0
    dropped = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        # a small send buffer: what was sent is close to what the client read
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        chunk = b"v" * 16384
        try:
            writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
            while True:  # the value never ends: only the client can stop this
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        except ConnectionError:
            dropped.set()
        finally:
            writer.close()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TransportError, match="could not be read") as info:
            await send(http, PreparedRequest("GET", f"http://127.0.0.1:{port}/x"))
        await asyncio.wait_for(dropped.wait(), 5)
    finally:
        server.close()
        await server.wait_closed()
    if path == "wire":  # aiohttp words it its own way ("Got more than 8190 bytes")
        assert "response headers exceed 256 fields or 64 KiB" in str(info.value)
    # the cap is 64 KiB on the wire (8 KiB in aiohttp); what else was sent sat in the
    # sockets' buffers when the connection was dropped
    assert sent < 1024 * 1024
