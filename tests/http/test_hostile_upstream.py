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
from pathlib import Path

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.connectors.spec import ConnectorSpec
from patchwire.errors import CallContext, TransportError
from patchwire.http import HttpCore, PreparedRequest, RetryDecision
from tests.support.hostile import MiB, bomb, memory_peak
from tests.support.servers import serve
from tests.support.settings import local_settings
from tests.support.wire import ONE_TRY, TIMEOUTS, ok, raw_server, send


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


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("path", ["wire", "aiohttp"])
async def test_a_decompression_bomb_fails_at_max_response_bytes_decoded_in_bounded_memory(
    http: HttpCore, path: str, coding: str,
) -> None:
    http.wire = path == "wire"
    spec = ConnectorSpec(name="bombed", base_url="http://127.0.0.1", max_response_bytes=MiB)
    packed = bomb(coding)  # ~400 KiB on the wire, 400 MiB decoded
    assert len(packed) < spec.max_response_bytes

    async def answer(head: bytes, n: int) -> bytes:
        return ok(packed, f"Content-Encoding: {coding}")

    async with raw_server(answer) as (url, _):
        with memory_peak() as peak, pytest.raises(TransportError) as info:
            await http.send(PreparedRequest("GET", f"{url}/x"), timeouts=TIMEOUTS,
                            retry=ONE_TRY, context=CallContext(), decision=RetryDecision(),
                            connector=spec)
    assert f"larger than {MiB} bytes (max_response_bytes)" in str(info.value)
    assert peak[0] < 50 * MiB


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_compressed_body_within_max_response_bytes_is_decoded_whole(
    http: HttpCore, coding: str,
) -> None:
    spec = ConnectorSpec(name="packed", base_url="http://127.0.0.1",
                         max_response_bytes=3 * MiB)

    async def answer(head: bytes, n: int) -> bytes:
        return ok(bomb(coding, 3), f"Content-Encoding: {coding}")

    async with raw_server(answer) as (url, _):
        response = await http.send(PreparedRequest("GET", f"{url}/x"), timeouts=TIMEOUTS,
                                   retry=ONE_TRY, context=CallContext(),
                                   decision=RetryDecision(), connector=spec)
    assert response.body == bytes(3 * MiB)


async def test_a_gzip_body_cut_short_is_an_error(http: HttpCore) -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return ok(bomb("gzip", 2)[:-100], "Content-Encoding: gzip")

    async with raw_server(answer) as (url, _):
        with pytest.raises(TransportError, match="truncated stream"):
            await send(http, PreparedRequest("GET", f"{url}/x"))


#: legal but unusual answers (and a few illegal ones), and what both paths make of them:
#: (status, the header asked about, its value, body) or the words of the error
ODD_ANSWERS: dict[str, tuple[bytes, tuple[int, str, str, bytes] | str]] = {
    "an obs-fold header line": (
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
        (200, "X-Folded", "a b", b"ok")),
    "an obs-fold line after a tab": (
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n\tb\r\nContent-Length: 2\r\n\r\nok",
        (200, "X-Folded", "a\tb", b"ok")),
    "bare LF line endings": (
        b"HTTP/1.1 200 OK\nContent-Length: 2\nX-Plain: 1\n\nok",
        (200, "X-Plain", "1", b"ok")),
    "whitespace after a value": (
        b"HTTP/1.1 200 OK\r\nX-Padded: v \t \r\nContent-Length: 2\r\n\r\nok",
        (200, "X-Padded", "v", b"ok")),
    "Transfer-Encoding identity read to the close": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nConnection: close\r\n\r\nall of it",
        (200, "Transfer-Encoding", "identity", b"all of it")),
    "spaces after a chunk size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nok\r\n0\r\n\r\n",
        (200, "Transfer-Encoding", "chunked", b"ok")),
    "status 600": (b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok",
                   "the status 600 is outside 100-599"),
    "status 099": (b"HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok",
                   "the status 99 is outside 100-599"),
    "status 000": (b"HTTP/1.1 000 Odd\r\nContent-Length: 2\r\n\r\nok",
                   "the status 0 is outside 100-599"),
    "a NUL byte in a value": (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
                              "could not be read"),
}


@pytest.mark.parametrize("case", list(ODD_ANSWERS))
async def test_both_http_paths_read_an_unusual_answer_alike(case: str) -> None:
    reply, expected = ODD_ANSWERS[case]

    async def answer(head: bytes, n: int) -> bytes:
        return reply

    outcomes: list[tuple[int, str, str, bytes] | str] = []
    for wire in (True, False):
        core = HttpCore(allow_networks=("127.0.0.1/32",), wire=wire)
        try:
            async with raw_server(answer) as (url, _):
                response = await send(core, PreparedRequest("GET", f"{url}/x"))
        except TransportError as exc:
            assert isinstance(expected, str) and expected in str(exc), (wire, exc)
            outcomes.append(expected)
        else:
            assert not isinstance(expected, str), (wire, response)
            name = expected[1]
            outcomes.append((response.status, name, response.headers.get(name, ""),
                             response.body))
        finally:
            await core.close()
    assert outcomes == [expected, expected]


AUTHS = {
    "api_key": "auth: {type: api_key, in: header, name: X-Api-Key}",
    "header": "auth: {type: header, headers: {X-Auth-Token: '{api_key}', X-Auth-Client: acme}}",
}
CREDENTIAL_HEADERS = {"x-api-key", "x-auth-token", "x-auth-client", "x-signed"}


@pytest.mark.parametrize("auth", list(AUTHS))
@pytest.mark.parametrize("path", ["wire", "aiohttp"])
async def test_a_redirect_to_another_origin_drops_every_credential_header(
    tmp_path: Path, path: str, auth: str,
) -> None:
    seen: dict[str, list[dict[str, str]]] = {}

    async def landing(request: web.Request) -> web.Response:
        seen.setdefault(request.host, []).append(
            {k.lower(): v for k, v in request.headers.items()})
        return web.json_response({"landed": True})

    other = web.Application()
    other.router.add_get("/landing", landing)
    async with serve(other) as elsewhere:
        async def moves(request: web.Request) -> web.Response:
            target = {"/same": "/landing", "/away": f"{elsewhere}/landing",
                      "/twice": "/away"}[request.path]
            raise web.HTTPTemporaryRedirect(target)

        home = web.Application()
        home.router.add_get("/{name:(same|away|twice)}", moves)
        home.router.add_get("/landing", landing)
        connector = f"""
name: keyed
base_url: "{{url}}"
settings:
  url: {{}}
  api_key: {{secret: true}}
{AUTHS[auth]}
headers: {{X-Signed: "sig {{api_key}}", X-Plain: plain}}
retry: {{attempts: 1}}
actions:
  same: {{request: {{path: /same}}}}
  away: {{request: {{path: /away}}}}
  twice: {{request: {{path: /twice}}}}
"""
        registry = ConnectorRegistry([load_connector_text(connector, "keyed.yaml")])
        http = HttpCore(allow_networks=("127.0.0.1/32",), wire=path == "wire")
        async with serve(home) as url, Patchwire(local_settings(tmp_path / "home"),
                                                  connectors=registry, http=http) as pw:
            await pw.add_connection("keyed", "c1", {"url": url, "api_key": "k-s3cret"})
            for action in ("same", "away", "twice"):
                assert await pw.call(f"keyed.{action}") == {"landed": True}
        await http.close()
    here, there = url.removeprefix("http://"), elsewhere.removeprefix("http://")
    [sent_home] = seen[here]
    sent_away = seen[there]  # /away, and /twice after a first hop at home
    expected_home = {"api_key": {"x-api-key": "k-s3cret"},
                     "header": {"x-auth-token": "k-s3cret", "x-auth-client": "acme"}}[auth]
    assert expected_home.items() <= sent_home.items()
    assert sent_home["x-signed"] == "sig k-s3cret"
    assert len(sent_away) == 2
    for headers in sent_away:
        assert not CREDENTIAL_HEADERS & set(headers), headers
        assert headers["x-plain"] == "plain"  # what is not a credential still goes
