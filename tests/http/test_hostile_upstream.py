"""The call path against a hostile upstream: answers crafted to desynchronise a kept-alive
connection, to exhaust memory (decompression bombs, endless headers) or to behave
differently on the two HTTP paths (``http/_wire.py`` and the aiohttp session).

Upstreams are raw-bytes asyncio servers on 127.0.0.1 (``raw_server`` of the wire tests),
so every byte an attacker would choose is on the wire as written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
