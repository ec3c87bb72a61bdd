"""The server against a hostile web page, over real HTTP (uvicorn on 127.0.0.1), on SQLite.

The tests play the attacker: a page whose name was rebound to 127.0.0.1 (its requests arrive
with ``Host: evil.example``), a page of another site or of another local port sending
requests to the server (``Origin``, ``Sec-Fetch-Site``), a sandboxed page (``Origin:
null``), a crafted login link (``next``), and a neighbour at the same address guessing keys.
Each refused request is also sent with good headers, to show that it still works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.access import AccessPolicy, safe_next
from patchwire.config import Settings
from patchwire.server import create_app
from patchwire.store.keys import KeyRepository
from tests.support.servers import serving
from tests.support.settings import local_settings

PROBLEM = "application/problem+json"
RETRY_FAILED = "/api/v1/runs/retry-failed"
NEW_KEY = {"name": "planted", "scopes": ["admin"]}
#: {port} is replaced by the server's port
OWN = {"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}


@dataclass
class Server:
    url: str
    port: int
    http: aiohttp.ClientSession
    admin: str | None = None  # an admin key, when the server has keys

    def at(self, path: str) -> str:
        return self.url + path

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"} if self.admin else {}

    async def send(self, method: str, path: str, headers: dict[str, str] | None = None,
                   *, key: bool = True, **kw: Any) -> tuple[int, dict[str, str], str]:
        """(status, headers, body) of one request (the admin key sent unless ``key`` is
        False; ``{port}`` in header values filled in), redirects not followed."""
        sent = {**(self.bearer() if key else {}),
                **{k: v.format(port=self.port) for k, v in (headers or {}).items()}}
        async with self.http.request(method, self.at(path), headers=sent,
                                     allow_redirects=False, **kw) as resp:
            return resp.status, dict(resp.headers), await resp.text()

    async def key_names(self) -> list[str]:
        async with self.http.get(self.at("/api/v1/keys"), headers=self.bearer()) as resp:
            assert resp.status == 200, await resp.text()
            return [k["name"] for k in await resp.json()]


@asynccontextmanager
async def running(settings: Settings, admin: str | None = None,
                  policy: AccessPolicy | None = None) -> AsyncIterator[Server]:
    app = create_app(Patchwire(settings), access=policy or AccessPolicy(cache_ttl=0))
    async with (
        serving(app) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Server(url, int(url.rsplit(":", 1)[1]), http, admin)


def settings_in(tmp_path: Path, **overrides: Any) -> Settings:
    return local_settings(tmp_path / "home",
                          database_url=f"sqlite+aiosqlite:///{tmp_path / 'patchwire.db'}",
                          **overrides)


@pytest.fixture(params=["no keys", "keys"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """The app on loopback: as installed (no API keys: everything open to loopback), and
    with an admin key in the store (sent with every request unless told otherwise)."""
    settings = settings_in(tmp_path)
    admin = None
    if request.param == "keys":
        async with Patchwire(settings) as setup:
            _, admin = await KeyRepository(setup.store).create("ops", ["admin"])
    async with running(settings, admin) as served:
        yield served


def assert_refused(got: tuple[int, dict[str, str], str], status: int, *words: str) -> None:
    code, headers, body = got
    assert code == status, body
    assert headers["Content-Type"].startswith(PROBLEM), headers
    for word in words:
        assert word in body, body


# -- 4.1: DNS rebinding ------------------------------------------------------------------------


FOREIGN_HOSTS = ["evil.example:{port}", "evil.example", "127.0.0.1.evil.example",
                 "localhost.evil.example:{port}"]
ASKED = [("GET", "/api/v1/connections", None), ("POST", "/api/v1/keys", NEW_KEY),
         ("POST", RETRY_FAILED, None), ("GET", "/", None), ("GET", "/metrics", None),
         ("POST", "/mcp", {})]


async def test_a_request_naming_another_host_is_refused_whatever_it_asks(
    server: Server,
) -> None:
    for host in FOREIGN_HOSTS:
        for method, path, body in ASKED:
            got = await server.send(method, path, {"Host": host}, json=body)
            assert_refused(got, 421, "Invalid Host header",
                           repr(host.format(port=server.port)))
    assert "planted" not in await server.key_names()


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}",
                                  "LOCALHOST:{port}"])
async def test_loopback_names_of_this_server_are_accepted(server: Server, host: str) -> None:
    status, _, body = await server.send("GET", "/api/v1/connections", {"Host": host})
    assert status == 200, body


async def test_a_loopback_name_at_another_port_is_refused(server: Server) -> None:
    # the Host says another local server was asked: a proxy or a forged request
    assert_refused(await server.send("GET", "/api/v1/connections", {"Host": "127.0.0.1:1"}),
                   421, "'127.0.0.1:1'")


async def test_configured_public_host_names_are_accepted(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, allowed_hosts=("patchwire.example", "proxy.example:8443"))
    async with running(settings) as served:
        for host in ("patchwire.example", "patchwire.example:443", "proxy.example:8443"):
            status, _, body = await served.send("GET", "/api/v1/connections", {"Host": host})
            assert status == 200, (host, body)
        status, _, body = await served.send(
            "POST", RETRY_FAILED, {"Host": "patchwire.example",
                                   "Origin": "http://patchwire.example"})
        assert status == 200, body
        assert_refused(await served.send("GET", "/api/v1/connections",
                                         {"Host": "proxy.example:8444"}), 421)
        assert_refused(await served.send("GET", "/api/v1/connections",
                                         {"Host": "evil.example"}), 421)


# -- 4.1: cross-site requests -----------------------------------------------------------------


CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "http://localhost:1"},  # another local server's page
    {"Origin": "https://127.0.0.1:{port}"},
    {"Origin": "null"},  # a sandboxed page, or after a cross-site redirect
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # another port of localhost is the same site
    {"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
]


async def test_a_bodyless_cross_site_post_changes_nothing(server: Server) -> None:
    for headers in CROSS_SITE:
        assert_refused(await server.send("POST", RETRY_FAILED, headers), 403, "cross-site")


async def test_a_cross_site_page_cannot_create_a_key(server: Server) -> None:
    for headers in CROSS_SITE:
        assert_refused(await server.send("POST", "/api/v1/keys", headers, json=NEW_KEY), 403)
    assert "planted" not in await server.key_names()


@pytest.mark.parametrize("origin", ["http://evil.example", "null"])
async def test_a_read_from_another_site_s_script_is_refused(server: Server, origin: str) -> None:
    assert_refused(await server.send("GET", "/api/v1/connections", {"Origin": origin}), 403,
                   "Invalid Origin header")


@pytest.mark.parametrize("headers", [
    pytest.param(OWN, id="own-page"),
    pytest.param({"Origin": "http://localhost:{port}", "Host": "localhost:{port}"},
                 id="own-page-by-localhost"),
    pytest.param({"Sec-Fetch-Site": "none"}, id="typed-by-the-person"),
    pytest.param({}, id="not-a-browser"),
])
async def test_this_server_s_own_pages_and_other_clients_still_change_things(
    server: Server, headers: dict[str, str],
) -> None:
    status, _, body = await server.send("POST", RETRY_FAILED, headers)
    assert status == 200, body
    status, _, body = await server.send("POST", "/api/v1/keys", headers,
                                        json={"name": "made-here", "scopes": ["read"]})
    assert status == 201, body
    assert '"made-here"' in body


async def test_a_link_from_another_site_still_opens_a_page(server: Server) -> None:
    # navigating is reading: a link in a chat or a ticket opens the runs list
    status, _, body = await server.send("GET", "/api/v1/runs",
                                        {"Sec-Fetch-Site": "cross-site"})
    assert status == 200, body


async def test_webhooks_are_taken_from_any_host_and_origin(server: Server) -> None:
    # upstreams post through tunnels and proxies; deliveries are verified by signature
    got = await server.send("POST", "/hooks/nope", {"Host": "tunnel.example",
                                                    "Origin": "null"}, key=False, data=b"{}")
    assert_refused(got, 404, "unknown_webhook_source")


async def test_every_response_forbids_framing(server: Server) -> None:
    for path in ("/", "/runs", "/api/v1/connections", "/auth/login", "/nope"):
        _, headers, _ = await server.send("GET", path, {"Accept": "text/html"})
        assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), path
        assert headers.get("X-Frame-Options") == "DENY", path
    # refusals too
    _, headers, _ = await server.send("GET", "/", {"Host": "evil.example"})
    assert headers.get("X-Frame-Options") == "DENY"


async def test_the_dashboard_cookie_cannot_be_used_by_another_site(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    async with Patchwire(settings) as setup:
        _, admin = await KeyRepository(setup.store).create("ops", ["admin"])
    async with running(settings) as served:
        status, headers, _ = await served.send("POST", "/auth/login", OWN,
                                               data={"key": admin, "next": "/"})
        assert status == 303
        jar = {"Cookie": headers["Set-Cookie"].split(";")[0]}
        own = OWN["Origin"]
        for cross in ({"Origin": "http://evil.example"},
                      {"Origin": "null", "Referer": own + "/runs"},
                      {"Origin": own, "Sec-Fetch-Site": "same-site"}):
            assert_refused(await served.send("POST", RETRY_FAILED, {**jar, **cross}), 403)
        status, _, body = await served.send("POST", RETRY_FAILED, {**jar, **OWN})
        assert status == 200, body


# -- 4.2: login ------------------------------------------------------------------------------


HOSTILE_NEXT = [
    "//evil.example", "/\\evil.example", "/\\\\evil.example", "/\t/evil.example",
    "https://evil.example", "/%0d%0aSet-Cookie:x", "/\r\nSet-Cookie: x=1", "/\r/evil.example",
    "/\n/evil.example", "/\x0b/evil.example", "/\x00", "/\x7f", "/\x85/evil.example",
    "/\u2028/evil.example", "/ /evil.example", "/\u3000x", "/\u202eevil", "javascript:alert(1)",
    "/%2F%2Fevil.example", "/%5Cevil.example", "/%09/evil.example", "evil.example", "",
]


@pytest.mark.parametrize("nxt", HOSTILE_NEXT)
def test_a_hostile_next_falls_back_to_the_overview(nxt: str) -> None:
    assert safe_next(nxt) == "/"


@pytest.mark.parametrize(("nxt", "sent"), [
    ("/ok?x=1", "/ok?x=1"), ("/runs?status=failed&flow=a%2Fb", "/runs?status=failed&flow=a%2Fb"),
    ("/runs/r1#steps", "/runs/r1#steps"), ("/javascript:alert(1)", "/javascript:alert(1)"),
    ("/connections/café", "/connections/caf%C3%A9"),
])
def test_a_path_of_this_server_is_kept_as_next(nxt: str, sent: str) -> None:
    assert safe_next(nxt) == sent


async def test_a_login_link_cannot_send_the_browser_off_site(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    async with Patchwire(settings) as setup:
        _, admin = await KeyRepository(setup.store).create("ops", ["read"])
    # wrong keys below, one per value: more than the failed-authentication limit
    async with running(settings, policy=AccessPolicy(cache_ttl=0, max_failures=100)) as served:
        for nxt in [*HOSTILE_NEXT, "/ok?x=1"]:
            expected = "/ok?x=1" if nxt == "/ok?x=1" else "/"
            status, headers, body = await served.send("POST", "/auth/login", OWN,
                                                      data={"key": admin, "next": nxt})
            assert (status, headers.get("Location")) == (303, expected), (nxt, body)
            assert headers["Set-Cookie"].startswith("patchwire_key=")
            status, _, page = await served.send("GET", "/auth/login", params={"next": nxt})
            assert status == 200 and f'name="next"\nvalue="{expected}"' in page, nxt
            # a wrong key shows the form again, keeping only a safe next
            status, _, page = await served.send("POST", "/auth/login", OWN,
                                                data={"key": "pwk_wrong", "next": nxt})
            assert status == 401 and f'value="{expected}"' in page, nxt


@pytest.mark.parametrize("origin", ["null", "http://evil.example", "http://localhost:1"])
async def test_a_login_posted_by_another_site_sets_no_cookie(tmp_path: Path,
                                                             origin: str) -> None:
    settings = settings_in(tmp_path)
    async with Patchwire(settings) as setup:
        _, admin = await KeyRepository(setup.store).create("ops", ["read"])
    async with running(settings) as served:
        for form in ({"data": {"key": admin, "next": "/"}}, {"json": {"key": admin}}):
            status, headers, body = await served.send("POST", "/auth/login",
                                                      {"Origin": origin}, **form)
            assert status == 403, body
            assert "Set-Cookie" not in headers


# -- 4.4: the failed-authentication limit --------------------------------------------------------


async def test_a_valid_key_is_served_while_its_address_is_limited_for_failures(
    tmp_path: Path,
) -> None:
    settings = settings_in(tmp_path)
    async with Patchwire(settings) as setup:
        _, admin = await KeyRepository(setup.store).create("ops", ["admin"])
    wrong = {"Authorization": "Bearer pwk_000000000000_" + "A" * 43}
    # a window of a day: no failure ages out while the test runs, however slowly
    policy = AccessPolicy(cache_ttl=0, max_failures=3, failure_window=86_400.0)
    async with running(settings, admin, policy) as served:
        for _ in range(3):  # a neighbour at the same address guesses
            status, _, body = await served.send("GET", "/api/v1/connections", wrong, key=False)
            assert status == 401, body
        got = await served.send("GET", "/api/v1/connections", wrong, key=False)
        assert_refused(got, 429, "auth_rate_limited")
        assert int(got[1]["Retry-After"]) > 0
        assert_refused(await served.send("GET", "/api/v1/connections", key=False), 429)
        # the owner of a valid key, at the same address, is not locked out
        status, _, body = await served.send("GET", "/api/v1/connections")
        assert status == 200, body
        status, _, body = await served.send("POST", RETRY_FAILED)
        assert status == 200, body
        status, headers, body = await served.send("POST", "/auth/login", OWN, key=False,
                                                  data={"key": admin, "next": "/runs"})
        assert (status, headers.get("Location")) == (303, "/runs"), body
        # and the guessing stays limited: a success clears nothing
        assert_refused(await served.send("GET", "/api/v1/connections", wrong, key=False), 429)
        status, _, _ = await served.send("POST", "/auth/login", OWN, key=False,
                                         data={"key": "pwk_wrong", "next": "/"})
        assert status == 429
