"""The call path's own HTTP/1.1 exchanges (``http/_wire.py``): keep-alive, framing,
decoding, redirects followed by the core, the rule that sends other requests through
aiohttp, and connection failures.

Ordinary upstreams are aiohttp apps on 127.0.0.1; the odd wire behaviours (a body that
ends with the connection, interim answers, a server that drops kept-alive connections)
come from a scripted asyncio server speaking raw bytes.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from patchwire.connectors.spec import ConnectorSpec
from patchwire.errors import CallContext, TransportError
from patchwire.http import (
    DefaultTransport,
    DestinationPolicy,
    HttpCore,
    Limits,
    PreparedRequest,
    RawResponse,
    RetryDecision,
)
from patchwire.http._wire import Frame
from tests.support.servers import serve
from tests.support.wire import ONE_TRY, TIMEOUTS, ok, raw_server, send


@pytest.fixture
async def http() -> AsyncIterator[HttpCore]:
    core = HttpCore(allow_networks=("127.0.0.1/32",))
    yield core
    await core.close()


async def test_calls_to_one_origin_reuse_a_kept_alive_connection(http: HttpCore) -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return ok(b'{"n": %d}' % n, "Content-Type: application/json")

    async with raw_server(answer) as (url, connections):
        bodies = [(await send(http, PreparedRequest("GET", f"{url}/x"))).body
                  for _ in range(3)]
    assert bodies == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    assert len(connections) == 1


async def test_the_request_carries_host_defaults_and_a_content_length_for_its_body(
    http: HttpCore,
) -> None:
    seen: list[web.Request] = []
    bodies: list[bytes] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request)
        bodies.append(await request.read())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/things", echo)
    async with serve(app) as url:
        await send(http, PreparedRequest("POST", f"{url}/things", {"X-Custom": "1"},
                                         params={"q": "a b&c"}, data=b'{"a": 1}',
                                         idempotent=False))
        await send(http, PreparedRequest("POST", f"{url}/things", idempotent=False))
    first, empty = seen
    assert first.headers["Host"] == url.removeprefix("http://")
    assert first.headers["X-Custom"] == "1"
    assert first.headers["Content-Length"] == "8"
    assert first.headers["Accept-Encoding"] == "gzip, deflate"
    assert first.query["q"] == "a b&c"
    assert bodies == [b'{"a": 1}', b""]
    assert empty.headers["Content-Length"] == "0"


async def test_a_body_without_length_ends_with_the_connection(http: HttpCore) -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"

    async with raw_server(answer) as (url, _):
        first = await send(http, PreparedRequest("GET", f"{url}/x"))
        second = await send(http, PreparedRequest("GET", f"{url}/x"))
    assert first.body == second.body == b"all of it"


async def test_chunked_bodies_and_interim_answers_are_read_whole(http: HttpCore) -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Final: yes\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    async with raw_server(answer) as (url, connections):
        response = await send(http, PreparedRequest("GET", f"{url}/x"))
        again = await send(http, PreparedRequest("GET", f"{url}/x"))
    assert (response.status, response.body) == (200, b"hello world")
    assert response.headers["X-Final"] == "yes"
    assert again.body == b"hello world" and len(connections) == 1


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_compressed_bodies_are_decoded(http: HttpCore, coding: str) -> None:
    payload = b'{"big": "' + b"x" * 5000 + b'"}'
    packed = gzip.compress(payload) if coding == "gzip" else zlib.compress(payload)

    async def answer(head: bytes, n: int) -> bytes:
        return ok(packed, f"Content-Encoding: {coding}")

    async with raw_server(answer) as (url, _):
        response = await send(http, PreparedRequest("GET", f"{url}/x"))
    assert response.body == payload


async def test_a_get_on_a_connection_the_server_dropped_is_sent_again_on_a_new_one(
    http: HttpCore,
) -> None:
    async def answer(head: bytes, n: int) -> bytes | None:
        # every connection answers once, then drops the next request unanswered
        return ok(b"fine") if n == 1 else None

    async with raw_server(answer) as (url, connections):
        await send(http, PreparedRequest("GET", f"{url}/x"))
        response = await send(http, PreparedRequest("GET", f"{url}/x"))
    assert response.body == b"fine"
    assert len(connections) == 2


async def test_a_post_on_a_dropped_connection_is_not_sent_again(http: HttpCore) -> None:
    requests: list[bytes] = []

    async def answer(head: bytes, n: int) -> bytes | None:
        requests.append(head.split(b" ", 1)[0])
        return ok(b"fine") if n == 1 else None

    async with raw_server(answer) as (url, _):
        await send(http, PreparedRequest("GET", f"{url}/x"))
        with pytest.raises(TransportError) as info:
            await send(http, PreparedRequest("POST", f"{url}/x", data=b"{}", idempotent=False))
    assert "closed the connection without a response" in str(info.value)
    assert requests == [b"GET", b"POST"]


async def test_a_redirect_is_followed_and_credentials_stay_with_their_origin(
    http: HttpCore,
) -> None:
    seen: dict[str, dict[str, str]] = {}

    async def final(request: web.Request) -> web.Response:
        seen[request.path] = dict(request.headers)
        return web.json_response({"method": request.method, "body": (await request.text())})

    other = web.Application()
    other.router.add_route("*", "/landing", final)
    async with serve(other) as elsewhere:
        async def moves(request: web.Request) -> web.Response:
            seen[request.path] = dict(request.headers)
            target = {"/same": "/landing-here", "/away": f"{elsewhere}/landing",
                      "/see-other": "/landing-here"}[request.path]
            raise web.HTTPSeeOther(target) if request.path == "/see-other" else (
                web.HTTPTemporaryRedirect(target))

        app = web.Application()
        app.router.add_route("*", "/{name:(same|away|see-other)}", moves)
        app.router.add_route("*", "/landing-here", final)
        async with serve(app) as url:
            secret = {"Authorization": "Bearer s3cret"}
            same = await send(http, PreparedRequest("GET", f"{url}/same", dict(secret)))
            away = await send(http, PreparedRequest("GET", f"{url}/away", dict(secret)))
            posted = await send(http, PreparedRequest("POST", f"{url}/see-other", dict(secret),
                                                      data=b"{}", idempotent=False))
    assert same.status == away.status == posted.status == 200
    assert away.url == f"{elsewhere}/landing"
    assert "Authorization" not in seen["/landing"]
    assert seen["/landing-here"]["Authorization"] == "Bearer s3cret"
    assert posted.body == b'{"method": "GET", "body": ""}'


async def test_a_header_with_a_line_break_is_refused_not_injected(http: HttpCore) -> None:
    heads: list[bytes] = []

    async def answer(head: bytes, n: int) -> bytes:
        heads.append(head)
        return ok(b"fine")

    async with raw_server(answer) as (url, _):
        with pytest.raises(ValueError, match="control character"):
            await send(http, PreparedRequest("GET", f"{url}/x",
                                             {"X-Id": "1\r\nX-Injected: yes"}))
    assert heads == []


async def test_connections_beyond_the_limit_wait_for_room() -> None:
    release = asyncio.Event()
    two_in = asyncio.Event()
    in_flight = 0
    most = 0

    async def answer(head: bytes, n: int) -> bytes:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 2:
            two_in.set()
        await release.wait()
        in_flight -= 1
        return ok(b"fine")

    http = HttpCore(allow_networks=("127.0.0.1/32",), limit=2)
    try:
        async with raw_server(answer) as (url, connections):
            calls = [asyncio.ensure_future(send(http, PreparedRequest("GET", f"{url}/x")))
                     for _ in range(5)]
            await asyncio.wait_for(two_in.wait(), 5)
            release.set()
            responses = await asyncio.wait_for(asyncio.gather(*calls), 10)
    finally:
        await http.close()
    assert [r.body for r in responses] == [b"fine"] * 5
    assert most == 2
    assert len(connections) == 2  # the waiting calls were handed the kept-alive ones


async def test_a_full_pool_closes_an_idle_connection_for_a_caller_of_another_origin() -> None:
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def slow(head: bytes, n: int) -> bytes:
        arrived.set()
        await release.wait()
        return ok(b"slow")

    async def quick(head: bytes, n: int) -> bytes:
        return ok(b"quick")

    http = HttpCore(allow_networks=("127.0.0.1/32",), limit=1)
    try:
        async with raw_server(slow) as (first, _), raw_server(quick) as (second, _):
            busy = asyncio.ensure_future(send(http, PreparedRequest("GET", f"{first}/x")))
            await asyncio.wait_for(arrived.wait(), 5)
            other = asyncio.ensure_future(send(http, PreparedRequest("GET", f"{second}/x")))
            release.set()
            results = await asyncio.wait_for(asyncio.gather(busy, other), 10)
    finally:
        await http.close()
    assert [r.body for r in results] == [b"slow", b"quick"]


async def test_a_cancelled_call_does_not_leave_its_connection_in_the_pool(
    http: HttpCore,
) -> None:
    first = asyncio.Event()
    stalled = asyncio.Event()

    async def answer(head: bytes, n: int) -> bytes:
        if not first.is_set():
            first.set()
            await stalled.wait()  # never answered: the caller gives up
        return ok(b"fine")

    async with raw_server(answer) as (url, connections):
        call = asyncio.ensure_future(send(http, PreparedRequest("GET", f"{url}/x")))
        await asyncio.wait_for(first.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        response = await send(http, PreparedRequest("GET", f"{url}/x"))
        stalled.set()
    assert response.body == b"fine"
    assert len(connections) == 2


def test_exchanges_work_on_uvloop_which_the_server_runs_on() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> list[bytes]:
        async def answer(head: bytes, n: int) -> bytes:
            return ok(b"n=%d" % n)

        core = HttpCore(allow_networks=("127.0.0.1/32",))
        try:
            async with raw_server(answer) as (url, _):
                return [(await send(core, PreparedRequest("GET", f"{url}/x"))).body
                        for _ in range(2)]
        finally:
            await core.close()

    assert uvloop.run(scenario()) == [b"n=1", b"n=2"]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "patchwire test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_https_upstreams_are_reached_only_with_a_certificate_that_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"secure": request.secure})

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"https://127.0.0.1:{port}/hello"
    untrusting = HttpCore(allow_networks=("127.0.0.1/32",))
    trusting = HttpCore(allow_networks=("127.0.0.1/32",))
    try:
        with pytest.raises(TransportError) as info:
            await send(untrusting, PreparedRequest("GET", url))
        assert "certificate verify failed" in str(info.value)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # now the CA store has it
        response = await send(trusting, PreparedRequest("GET", url))
        assert (response.status, response.body) == (200, b'{"secure": true}')
    finally:
        await untrusting.close()
        await trusting.close()
        await runner.cleanup()


async def test_a_body_cut_short_is_an_error_not_a_short_answer(http: HttpCore) -> None:
    async def answer(head: bytes, n: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nonly this"

    async with raw_server(answer) as (url, _):
        with pytest.raises(TransportError, match="payload is not completed"):
            await send(http, PreparedRequest("GET", f"{url}/x"))


async def test_an_endless_header_section_is_cut_off(http: HttpCore) -> None:
    async def answer(head: bytes, n: int) -> bytes:
        many = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 200) for i in range(1000))
        return b"HTTP/1.1 200 OK\r\n" + many + b"Content-Length: 2\r\n\r\nok"

    async with raw_server(answer) as (url, _):
        with pytest.raises(TransportError, match="response headers exceed"):
            await send(http, PreparedRequest("GET", f"{url}/x"))


@pytest.mark.parametrize("path", ["wire", "aiohttp"])
async def test_a_body_read_is_capped_when_asked_and_the_connection_dropped(path: str) -> None:
    transport = DefaultTransport(DestinationPolicy.from_allow_list(["127.0.0.1/32"]),
                                 wire=path == "wire")
    capped = Limits(aiohttp.ClientTimeout(total=5), max_body=1024, truncate=True)
    whole = Limits(aiohttp.ClientTimeout(total=5))

    async def answer(head: bytes, n: int) -> bytes:
        return ok(b"x" * 100_000)

    try:
        async with raw_server(answer) as (url, connections):
            first = await transport.handle(
                PreparedRequest("POST", f"{url}/x", data=b"{}"), capped)
            second = await transport.handle(
                PreparedRequest("POST", f"{url}/x", data=b"{}"), whole)
    finally:
        await transport.aclose()
    assert (first.status, len(first.body)) == (200, 1024)
    assert len(second.body) == 100_000
    if path == "wire":  # (aiohttp keeps a connection whose whole answer it had buffered)
        assert len(connections) == 2  # the capped one was not reused


async def test_ordinary_json_and_form_requests_take_the_wire_and_the_rest_aiohttp(
    http: HttpCore,
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/x", answer)
    taken: list[str] = []
    transport = http.transport
    assert isinstance(transport, DefaultTransport)
    wire_exchange, aiohttp_handle = transport.wire.pool.exchange, transport.aiohttp.handle

    async def by_wire(frame: Frame, limits: Limits) -> RawResponse:
        taken.append(f"{frame.method} wire")
        return await wire_exchange(frame, limits)

    async def by_aiohttp(request: PreparedRequest, limits: Limits) -> RawResponse:
        taken.append(f"{request.method} aiohttp")
        return await aiohttp_handle(request, limits)

    transport.wire.pool.exchange = by_wire  # type: ignore[method-assign]
    transport.aiohttp.handle = by_aiohttp  # type: ignore[method-assign]
    async with serve(app) as url:
        form = aiohttp.FormData()
        form.add_field("file", b"data", filename="a.txt")
        for req in (PreparedRequest("GET", f"{url}/x"),
                    PreparedRequest("POST", f"{url}/x", {"Content-Type": "application/json"},
                                    data=b"{}", idempotent=False),
                    PreparedRequest("PUT", f"{url}/x", data=b"a=1"),
                    PreparedRequest("POST", f"{url}/x", data=form, idempotent=False),
                    PreparedRequest("POST", f"{url}/x", json={"a": 1}, idempotent=False),
                    PreparedRequest("GET", f"{url}/x", cookies={"c": "1"}),
                    PreparedRequest("HEAD", f"{url}/x")):
            assert (await send(http, req)).status == 200
    assert taken == ["GET wire", "POST wire", "PUT wire", "POST aiohttp", "POST aiohttp",
                     "GET aiohttp", "HEAD aiohttp"]


async def test_the_wire_transport_alone_refuses_a_request_it_cannot_write_as_given() -> None:
    transport = DefaultTransport(DestinationPolicy.from_allow_list(["127.0.0.1/32"]))
    limits = Limits(aiohttp.ClientTimeout(total=5))
    try:
        for req in (PreparedRequest("HEAD", "http://127.0.0.1:9/x"),
                    PreparedRequest("GET", "http://127.0.0.1:9/x", {"X-A": "1\r\nX-B: 2"}),
                    PreparedRequest("GET", "http://127.0.0.1:9/x", cookies={"c": "1"})):
            assert transport.wire.frame(req) is None
            with pytest.raises(ValueError, match="the wire cannot send"):
                await transport.wire.handle(req, limits)
    finally:
        await transport.aclose()


@pytest.mark.parametrize("path", ["wire", "aiohttp"])
async def test_a_response_over_max_response_bytes_fails_the_call_on_either_path(
    http: HttpCore, path: str,
) -> None:
    spec = ConnectorSpec(name="big", base_url="http://127.0.0.1", max_response_bytes=1000)
    http.wire = path == "wire"

    async def answer(head: bytes, n: int) -> bytes:
        size = 500 if b"/small" in head else 5000
        return ok(b"x" * size)

    async with raw_server(answer) as (url, _):
        def call(where: str) -> Awaitable[RawResponse]:
            return http.send(PreparedRequest("GET", f"{url}/{where}"), timeouts=TIMEOUTS,
                             retry=ONE_TRY, context=CallContext(), decision=RetryDecision(),
                             connector=spec)

        with pytest.raises(TransportError, match=r"larger than 1000 bytes \(max_response"):
            await call("big")
        assert len((await call("small")).body) == 500
