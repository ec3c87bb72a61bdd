"""The HTTP core at the byte level: a raw-bytes server on loopback that answers each
request head as the test scripts it, and ``send`` with fixed timeouts and one try."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from patchwire.connectors.spec import RetryPolicy, Timeouts
from patchwire.errors import CallContext
from patchwire.http import HttpCore, PreparedRequest, RawResponse, RetryDecision

TIMEOUTS = Timeouts(connect=2, read=5, total=5)


ONE_TRY = RetryPolicy(attempts=1)


Answer = Callable[[bytes, int], Awaitable[bytes | None]]


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on 127.0.0.1 that reads each request's head and writes ``answer(head, n)``
    (n counts requests on that connection; ``None`` closes it unanswered). Yields the URL
    and a list with one entry per accepted connection."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n += 1
                reply = await answer(head, n)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # the server shuts down with a kept-alive connection still open
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        await server.wait_closed()


async def send(http: HttpCore, req: PreparedRequest, retry: RetryPolicy = ONE_TRY
               ) -> RawResponse:
    return await http.send(req, timeouts=TIMEOUTS, retry=retry,
                           context=CallContext(url=req.url), decision=RetryDecision())


def ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n").encode() + body
