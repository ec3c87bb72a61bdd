"""The SSRF guard: every blocked address class, redirect hops, the allow-list, and DNS
answers that change between check and connect.

Blocked destinations are refused before any socket is opened, so literal addresses need no
network; names go through a stub resolver (or ``localhost``). Servers that must answer run
on 127.0.0.1.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult

from patchwire import BlockedDestinationError, Patchwire
from patchwire.config import load_settings
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.connectors.spec import ConnectorSpec, RetryPolicy, Timeouts
from patchwire.errors import CallContext, ConfigError, TransportError
from patchwire.http import HttpCore, PreparedRequest, RawResponse, RetryDecision
from patchwire.http._ssrf import (
    DestinationPolicy,
    DestinationRefused,
    GuardedConnector,
    literal_address,
)
from patchwire.server import create_app
from tests.support.hostile import NoInvalidNames, StubResolver
from tests.support.servers import serve, serving
from tests.support.settings import local_settings
from tests.support.upstream import Upstream, connector_yaml, patchwire_for

TIMEOUTS = Timeouts(connect=2, read=2, total=2)
RETRY = RetryPolicy(attempts=3, backoff_initial=0)


async def fetch(http: HttpCore, url: str) -> tuple[RawResponse, RetryDecision]:
    decision = RetryDecision()
    response = await http.send(PreparedRequest("GET", url), timeouts=TIMEOUTS, retry=RETRY,
                               context=CallContext(url=url), decision=decision)
    return response, decision


async def refused(http: HttpCore, url: str) -> tuple[BlockedDestinationError, RetryDecision]:
    decision = RetryDecision()
    with pytest.raises(BlockedDestinationError) as info:
        await http.send(PreparedRequest("GET", url), timeouts=TIMEOUTS, retry=RETRY,
                        context=CallContext(url=url), decision=decision)
    return info.value, decision


@pytest.fixture
async def http() -> AsyncIterator[HttpCore]:
    core = HttpCore()
    yield core
    await core.close()


BLOCKED = [
    # (url, address the guard names, reason fragment)
    ("http://127.0.0.1/", "127.0.0.1", "loopback"),
    ("http://127.8.9.10:8080/", "127.8.9.10", "loopback"),
    ("http://[::1]/", "::1", "loopback"),
    ("http://10.1.2.3/", "10.1.2.3", "private"),
    ("http://172.16.0.1/", "172.16.0.1", "private"),
    ("http://172.31.255.254/", "172.31.255.254", "private"),
    ("http://192.168.1.1/", "192.168.1.1", "private"),
    ("http://[fd12:3456::1]/", "fd12:3456::1", "private"),
    ("http://[fc00::1]/", "fc00::1", "private"),
    ("http://169.254.1.1/", "169.254.1.1", "link-local"),
    ("http://[fe80::1]/", "fe80::1", "link-local"),
    ("http://100.64.0.1/", "100.64.0.1", "carrier-grade NAT"),
    ("http://100.127.255.254/", "100.127.255.254", "carrier-grade NAT"),
    ("http://224.0.0.1/", "224.0.0.1", "multicast"),
    ("http://239.255.255.250/", "239.255.255.250", "multicast"),
    ("http://[ff02::1]/", "ff02::1", "multicast"),
    ("http://0.0.0.0/", "0.0.0.0", "unspecified"),
    ("http://[::]/", "::", "unspecified"),
    ("http://255.255.255.255/", "255.255.255.255", "broadcast"),
    ("http://240.0.0.1/", "240.0.0.1", "reserved"),
    ("http://192.0.2.10/", "192.0.2.10", "reserved"),
    ("http://[2001:db8::1]/", "2001:db8::1", "reserved"),
    # cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254", "cloud metadata"),
    ("http://100.100.100.200/", "100.100.100.200", "cloud metadata"),
    # IPv4 hidden in IPv6: mapped, compatible, NAT64, 6to4
    ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe = 169.254.169.254", "cloud metadata"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 = 127.0.0.1", "loopback"),
    ("http://[::ffff:10.0.0.1]/", "::ffff:a00:1 = 10.0.0.1", "private"),
    ("http://[::127.0.0.1]/", "::7f00:1 = 127.0.0.1", "loopback"),
    ("http://[64:ff9b::169.254.169.254]/", "64:ff9b::a9fe:a9fe = 169.254.169.254",
     "cloud metadata"),
    ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1 = 127.0.0.1", "loopback"),
    ("http://[2002:7f00:1::]/", "2002:7f00:1:: = 127.0.0.1", "loopback"),
    # the numeric forms the C resolver accepts: decimal, hex, octal, short
    ("http://2130706433/", "127.0.0.1", "loopback"),
    ("http://0x7f000001/", "127.0.0.1", "loopback"),
    ("http://0x7f.1/", "127.0.0.1", "loopback"),
    ("http://0177.0.0.1/", "127.0.0.1", "loopback"),
    ("http://0177.1/", "127.0.0.1", "loopback"),
    ("http://127.1/", "127.0.0.1", "loopback"),
    ("http://127.0.1/", "127.0.0.1", "loopback"),
    ("http://0/", "0.0.0.0", "unspecified"),
    ("http://2852039166/", "169.254.169.254", "cloud metadata"),
    ("http://0xA9.0xFE.0xA9.0xFE/", "169.254.169.254", "cloud metadata"),
    ("http://0251.0376.0251.0376/", "169.254.169.254", "cloud metadata"),
]


@pytest.mark.parametrize(("url", "address", "reason"), BLOCKED)
async def test_internal_addresses_are_refused_in_every_spelling_without_a_retry(
    http: HttpCore, url: str, address: str, reason: str
) -> None:
    error, decision = await refused(http, url)
    assert error.address == address
    assert reason in error.reason
    assert reason in str(error) and "PATCHWIRE_ALLOW_NETWORKS" in str(error)
    assert error.context.url == url
    assert error.to_dict()["error"] == "blocked_destination"
    assert decision.attempts == 1 and decision.retries == 0


async def test_the_metadata_service_name_is_refused_before_it_is_resolved() -> None:
    stub = StubResolver({})
    http = HttpCore(resolver=stub)
    try:
        for host in ("metadata.google.internal", "METADATA.google.internal."):
            error, _ = await refused(http, f"http://{host}/computeMetadata/v1/")
            assert error.host == host.lower() or error.host == host
            assert "cloud metadata" in error.reason and error.address is None
        assert stub.lookups == []
    finally:
        await http.close()


async def test_localhost_resolves_to_loopback_and_is_refused(http: HttpCore) -> None:
    error, _ = await refused(http, "http://localhost:9/")
    assert error.host == "localhost"
    assert "loopback" in error.reason


async def test_a_name_that_resolves_to_a_private_address_is_refused_and_named() -> None:
    stub = StubResolver({"intranet.example.com": ["10.20.30.40"]})
    http = HttpCore(resolver=stub)
    try:
        error, _ = await refused(http, "http://intranet.example.com/admin")
        assert error.host == "intranet.example.com" and error.address == "10.20.30.40"
        assert "refused to connect to intranet.example.com (10.20.30.40)" in str(error)
    finally:
        await http.close()


async def test_an_allow_listed_loopback_server_is_reached() -> None:
    upstream = Upstream()
    http = HttpCore(allow_networks=("127.0.0.0/8",))
    try:
        async with serve(upstream.app()) as url:
            response, _ = await fetch(http, f"{url}/thing")
        assert response.status == 200 and len(upstream.requests) == 1
    finally:
        await http.close()


async def test_a_loopback_upstream_is_refused_on_the_call_path_by_default(
    tmp_path: Path,
) -> None:
    upstream = Upstream()
    async with patchwire_for(tmp_path, upstream.app(), http=HttpCore()) as pw:
        with pytest.raises(BlockedDestinationError) as info:
            await pw.call("up.get", {}, connection="c1")
    assert info.value.context.action == "up.get"
    assert "loopback" in info.value.reason
    assert upstream.requests == []


async def test_a_redirect_to_an_internal_address_is_refused_at_that_hop() -> None:
    hits: list[str] = []

    async def bounce(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/iam/")

    app = web.Application()
    app.router.add_get("/start", bounce)
    # only the first server is admitted: the hop must pass the guard on its own
    http = HttpCore(allow_networks=("127.0.0.1/32",))
    try:
        async with serve(app) as url:
            error, decision = await refused(http, f"{url}/start")
        assert error.address == "169.254.169.254" and "cloud metadata" in error.reason
        assert hits == ["/start"] and decision.attempts == 1
    finally:
        await http.close()


async def test_a_redirect_to_a_loopback_address_outside_the_allow_list_is_refused() -> None:
    async def bounce(request: web.Request) -> web.Response:
        port = request.url.port
        raise web.HTTPTemporaryRedirect(f"http://0x7f.0.0.2:{port}/inner")

    app = web.Application()
    app.router.add_get("/start", bounce)
    http = HttpCore(allow_networks=("127.0.0.1",))
    try:
        async with serve(app) as url:
            error, _ = await refused(http, f"{url}/start")
        assert error.host == "0x7f.0.0.2" and error.address == "127.0.0.2"
    finally:
        await http.close()


async def test_the_connection_goes_to_the_address_that_was_checked_even_if_dns_changes(
) -> None:
    # DNS answers the admitted 127.0.0.1 first and the refused 127.0.0.2 on any later
    # lookup: a guard that checked one lookup and connected after another would be fooled.
    stub = StubResolver({"rebind.test": ["127.0.0.1", "127.0.0.2"]})
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.remote)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", handler)
    http = HttpCore(allow_networks=("127.0.0.1/32",), resolver=stub)
    try:
        async with serve(app) as url:
            port = url.rsplit(":", 1)[1]
            response, _ = await fetch(http, f"http://rebind.test:{port}/")
        assert response.status == 200
        assert stub.lookups == ["rebind.test"]  # resolved once: no second lookup to connect
        assert seen == ["127.0.0.1"]
    finally:
        await http.close()


async def test_a_changed_dns_answer_is_checked_again_on_the_next_resolution() -> None:
    stub = StubResolver({"rebind.test": ["127.0.0.1", "127.0.0.2"]})
    http = HttpCore(allow_networks=("127.0.0.1/32",), resolver=stub)
    try:
        async with serve(Upstream().app()) as url:
            port = url.rsplit(":", 1)[1]
            await fetch(http, f"http://rebind.test:{port}/")
            await http.close()  # drop the DNS cache and the kept-alive connection
            error, _ = await refused(http, f"http://rebind.test:{port}/")
        assert error.address == "127.0.0.2" and "loopback" in error.reason
    finally:
        await http.close()


async def test_a_dns_answer_mixing_public_and_internal_addresses_is_refused() -> None:
    class Mixed(StubResolver):
        async def resolve(self, host: str, port: int = 0,
                          family: socket.AddressFamily = socket.AF_INET
                          ) -> list[ResolveResult]:
            return [ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET,
                                  proto=0, flags=0) for a in ("93.184.215.14", "10.0.0.5")]

    http = HttpCore(resolver=Mixed({}))
    try:
        error, _ = await refused(http, "http://mixed.example.com/")
        assert error.address == "10.0.0.5"
    finally:
        await http.close()


async def test_the_socket_check_refuses_an_address_that_was_never_checked() -> None:
    connector = GuardedConnector(DestinationPolicy.from_allow_list(["127.0.0.1"]))
    try:
        with pytest.raises(DestinationRefused, match="private"):
            connector._socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 80)))
        sock = connector._socket((socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                  ("127.0.0.1", 80)))
        sock.close()
    finally:
        await connector.close()


async def test_an_allow_listed_name_admits_internal_addresses_but_never_metadata() -> None:
    stub = StubResolver({"sandbox.internal": ["127.0.0.1"],
                         "evil.internal": ["169.254.169.254"],
                         "other.internal": ["127.0.0.1"]})
    http = HttpCore(allow_networks=("sandbox.internal", "EVIL.internal."), resolver=stub)
    try:
        async with serve(Upstream().app()) as url:
            port = url.rsplit(":", 1)[1]
            response, _ = await fetch(http, f"http://sandbox.internal:{port}/")
            assert response.status == 200
            error, _ = await refused(http, f"http://other.internal:{port}/")
            assert "loopback" in error.reason
        error, _ = await refused(http, "http://evil.internal/")
        assert "cloud metadata" in error.reason
    finally:
        await http.close()


def test_a_cidr_allows_by_address_whatever_the_spelling() -> None:
    policy = DestinationPolicy.from_allow_list(["127.0.0.0/8"])
    for host in ("127.0.0.1", "2130706433", "0x7f.1", "::ffff:127.0.0.1"):
        ip = literal_address(host)
        assert ip is not None
        policy.check_address(host, ip)  # no exception
    with pytest.raises(DestinationRefused):
        policy.check_address("10.0.0.1", literal_address("10.0.0.1"))  # type: ignore[arg-type]


def test_public_addresses_pass_in_any_numeric_spelling() -> None:
    policy = DestinationPolicy()
    for host in ("8.8.8.8", "0x08080808", "134744072", "010.010.010.010", "2606:4700::1111",
                 "::ffff:8.8.8.8"):
        ip = literal_address(host)
        assert ip is not None, host
        policy.check_address(host, ip)
    assert literal_address("256.1.1.1") is None and literal_address("example.com") is None


def test_the_allow_list_is_read_from_the_environment_and_toml(tmp_path: Path) -> None:
    settings = load_settings(environ={"PATCHWIRE_ALLOW_NETWORKS": "127.0.0.0/8, ::1/128,api.lan"},
                             toml_path=tmp_path / "none.toml")
    assert settings.allow_networks == ("127.0.0.0/8", "::1/128", "api.lan")
    toml = tmp_path / "patchwire.toml"
    toml.write_text('[patchwire]\nallow_networks = ["10.0.0.0/8"]\n')
    assert load_settings(environ={}, toml_path=toml).allow_networks == ("10.0.0.0/8",)
    with pytest.raises(ConfigError, match="neither a CIDR"):
        load_settings(environ={"PATCHWIRE_ALLOW_NETWORKS": "10.0.0.0/33"},
                      toml_path=tmp_path / "none.toml")


# -- names that do not resolve -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["wire", "aiohttp"])
async def test_a_name_that_does_not_resolve_is_a_transport_error_retried_and_counted(
    path: str,
) -> None:
    resolver = NoInvalidNames({})
    http = HttpCore(resolver=resolver, wire=path == "wire")
    spec = ConnectorSpec(name="nowhere", base_url="http://api.nothing.invalid",
                         retry=RETRY)
    decision = RetryDecision()
    try:
        with pytest.raises(TransportError) as info:
            await http.send(PreparedRequest("GET", "http://api.nothing.invalid/x"),
                            timeouts=TIMEOUTS, retry=spec.retry, context=CallContext(),
                            decision=decision, connector=spec)
        breaker = http.breaker_state("nowhere")
    finally:
        await http.close()
    assert str(info.value) == ("connection error after 3 attempts: cannot resolve "
                               "api.nothing.invalid (Name or service not known)")
    assert decision.attempts == 3 and len(resolver.lookups) == 3
    assert (breaker.failures, breaker.calls) == (3, 3)


async def test_a_call_to_a_name_that_does_not_resolve_is_logged_and_a_502_from_the_api(
    tmp_path: Path,
) -> None:
    registry = ConnectorRegistry([load_connector_text(connector_yaml(), "up.yaml")])
    settings = local_settings(tmp_path / "home")
    async with Patchwire(settings, connectors=registry,
                         http=HttpCore(resolver=NoInvalidNames({}))) as pw:
        await pw.add_connection("up", "c1", {"url": "http://api.nothing.invalid"})
        with pytest.raises(TransportError, match=r"cannot resolve api\.nothing\.invalid"):
            await pw.call("up.get", connection="c1")
        (record,) = await pw.recent_calls()
    assert (record.status, record.attempts, record.error_class) == (
        "error", 3, "connection_error")
    assert "cannot resolve api.nothing.invalid" in (record.error_message or "")

    served = Patchwire(settings, connectors=registry, http=HttpCore(resolver=NoInvalidNames({})))
    async with (
        serving(create_app(served)) as url,
        aiohttp.ClientSession() as client,
        client.post(f"{url}/api/v1/actions/up.get/call",
                    json={"connection": "c1", "input": {}}) as resp,
    ):
        assert resp.status == 502, await resp.text()
        assert resp.content_type == "application/problem+json"
        problem = await resp.json()
    assert problem["title"] == "TransportError"
    assert "cannot resolve api.nothing.invalid" in problem["detail"]
