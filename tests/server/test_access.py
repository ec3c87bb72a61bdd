"""Access control: API keys with scopes over real HTTP (uvicorn on loopback), on SQLite and
PostgreSQL; the scope table; the dashboard cookie; the failed-authentication limit; the
``patchwire keys`` commands and ``serve``'s bind rule."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.access import PUBLIC, AccessPolicy, FailedAuthLimiter
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.store import Store
from patchwire.store.keys import KeyRepository, parse_key
from tests.support.access import full_app, scope_of
from tests.support.cli import Cli
from tests.support.leaks import leaks_in, leaks_in_database
from tests.support.servers import serving
from tests.support.settings import local_settings

CALL = "/api/v1/actions/shop.get_order/call"
ORDER = {"connection": "acme", "input": {"order_id": "42"}}


@dataclass
class Secured:
    url: str
    http: aiohttp.ClientSession
    keys: dict[str, str]  # scope name -> full key
    ids: dict[str, str]
    store_url: str

    def at(self, path: str) -> str:
        return self.url + path

    def bearer(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}


@pytest.fixture
async def secured(store_url: str, tmp_path: Path, sandbox: Sandbox,
                  canary: str) -> AsyncIterator[Secured]:
    """The app with one key per scope in the store (checked without caching)."""
    settings = local_settings(tmp_path / "home", database_url=store_url)
    keys: dict[str, str] = {}
    ids: dict[str, str] = {}
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme", {"sandbox_url": sandbox.url,
                                                    "api_key": canary})
        repo = KeyRepository(setup.store)
        for scope in ("read", "run", "approve", "admin"):
            record, text = await repo.create(f"{scope}-key", [scope])
            keys[scope], ids[scope] = text, record.id
    app = create_app(Patchwire(settings), access=AccessPolicy(cache_ttl=0))
    async with (
        serving(app) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Secured(url, http, keys, ids, store_url)


async def status_of(http: aiohttp.ClientSession, method: str, url: str,
                    headers: dict[str, str] | None = None, **kw: object) -> int:
    async with http.request(method, url, headers=headers, allow_redirects=False,
                            **kw) as resp:  # type: ignore[arg-type]
        await resp.read()
        return resp.status


# -- no keys: as before ------------------------------------------------------------------------


async def test_without_keys_the_api_metrics_and_mcp_need_no_key(store_url: str, tmp_path: Path,
                                                              sandbox: Sandbox,
                                                              canary: str) -> None:
    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme", {"sandbox_url": sandbox.url,
                                                    "api_key": canary})
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession() as http,
    ):
        assert await status_of(http, "GET", url + "/api/v1/connectors") == 200
        assert await status_of(http, "POST", url + CALL, json=ORDER) == 200
        assert await status_of(http, "GET", url + "/metrics") == 200
        # a request id comes back on every response (the caller's when it is plain)
        async with http.get(url + "/healthz", headers={"X-Request-Id": "abc-1"}) as resp:
            assert resp.headers["X-Request-Id"] == "abc-1"


# -- with keys: the matrix ---------------------------------------------------------------------


async def test_without_a_key_or_with_a_wrong_one_requests_get_401(secured: Secured) -> None:
    s = secured
    async with s.http.get(s.at("/api/v1/connectors")) as resp:
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        body = await resp.json()
    assert body["status"] == 401 and "API key" in body["detail"]
    wrong = s.keys["admin"][:-4] + "AAAA"  # right id, wrong secret
    for headers in ({"Authorization": f"Bearer {wrong}"}, {"X-API-Key": "pwk_nothing"},
                    {"Authorization": "Bearer not-a-key"}):
        assert await status_of(s.http, "GET", s.at("/api/v1/connectors"), headers) == 401
    assert await status_of(s.http, "POST", s.at(CALL), json=ORDER) == 401
    assert await status_of(s.http, "POST", s.at("/mcp"), json={}) == 401
    assert await status_of(s.http, "GET", s.at("/metrics")) == 401
    # public: health, webhooks (their own verification), the login form
    assert await status_of(s.http, "GET", s.at("/healthz")) == 200
    assert await status_of(s.http, "GET", s.at("/auth/login")) == 200
    assert await status_of(s.http, "POST", s.at("/hooks/nobody"), data=b"{}") not in (401, 403)


async def test_each_scope_opens_its_routes_and_only_those(secured: Secured) -> None:
    s = secured
    cases: list[tuple[str, str, dict[str, object], dict[str, int]]] = [
        # method, path, request options, status per scope (403: refused by scope)
        ("GET", "/api/v1/connectors", {},
         {"read": 200, "run": 403, "approve": 403, "admin": 200}),
        ("GET", "/api/v1/runs", {}, {"read": 200, "run": 403, "approve": 403, "admin": 200}),
        ("GET", "/metrics", {}, {"read": 200, "run": 403, "approve": 403, "admin": 200}),
        ("POST", CALL, {"json": ORDER}, {"read": 403, "run": 200, "approve": 403, "admin": 200}),
        ("POST", "/api/v1/runs/nope/cancel", {},
         {"read": 403, "run": 404, "approve": 403, "admin": 404}),
        ("POST", "/api/v1/approvals/nope/approve", {"json": {}},
         {"read": 403, "run": 403, "approve": 404, "admin": 404}),
        # no rule names it: admin only
        ("DELETE", "/api/v1/subscriptions/nope", {},
         {"read": 403, "run": 403, "approve": 403, "admin": 404}),
    ]
    for method, path, options, expected in cases:
        for scope, status in expected.items():
            got = await status_of(s.http, method, s.at(path), s.bearer(scope), **options)
            assert got == status, f"{method} {path} with the {scope} key: {got}, not {status}"
    # X-API-Key works like the bearer header
    got = await status_of(s.http, "GET", s.at("/api/v1/connectors"),
                          {"X-API-Key": s.keys["read"]})
    assert got == 200
    # a refusal by scope names the scope needed
    async with s.http.post(s.at(CALL), json=ORDER, headers=s.bearer("read")) as resp:
        body = await resp.json()
    assert resp.status == 403 and "'run' scope" in body["detail"]
    assert 'scope="run"' in resp.headers["WWW-Authenticate"]


async def test_a_revoked_key_is_refused(secured: Secured) -> None:
    s = secured
    assert await status_of(s.http, "GET", s.at("/api/v1/connectors"), s.bearer("read")) == 200
    async with await Store.open(s.store_url) as store:
        revoked = await KeyRepository(store).revoke(s.ids["read"])
        assert revoked.revoked_at is not None
        assert [k.id for k in await KeyRepository(store).list()] == [
            s.ids[k] for k in ("run", "approve", "admin")]
        assert len(await KeyRepository(store).list(include_revoked=True)) == 4
    assert await status_of(s.http, "GET", s.at("/api/v1/connectors"), s.bearer("read")) == 401
    assert await status_of(s.http, "GET", s.at("/api/v1/connectors"), s.bearer("admin")) == 200


async def test_failed_authentication_is_rate_limited_per_client(secured: Secured) -> None:
    s = secured
    wrong = {"Authorization": "Bearer pwk_000000000000_" + "A" * 43}
    for _ in range(10):
        assert await status_of(s.http, "GET", s.at("/api/v1/connectors"), wrong) == 401
    async with s.http.get(s.at("/api/v1/connectors"), headers=wrong) as resp:
        assert resp.status == 429
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # only wrong keys are turned away: a valid key from the same address is served
    # (tests/server/test_hostile_page.py)
    assert await status_of(s.http, "GET", s.at("/api/v1/connectors"), s.bearer("admin")) == 200
    assert await status_of(s.http, "GET", s.at("/api/v1/connectors"), wrong) == 429
    # the public routes stay open
    assert await status_of(s.http, "GET", s.at("/healthz")) == 200


def test_the_failure_limiter_forgets_after_its_window() -> None:
    now = [0.0]
    limiter = FailedAuthLimiter(3, 60.0, clock=lambda: now[0], max_clients=2)
    for _ in range(3):
        assert limiter.retry_after("a") is None
        limiter.fail("a")
    assert limiter.retry_after("a") == pytest.approx(60.0)
    assert limiter.retry_after("b") is None
    now[0] = 30.0
    assert limiter.retry_after("a") == pytest.approx(30.0)
    now[0] = 60.5
    assert limiter.retry_after("a") is None
    for client in ("c", "d", "e"):  # memory stays bounded
        limiter.fail(client)
    assert len(limiter._failures) <= 2


# -- the dashboard's cookie --------------------------------------------------------------------


async def test_the_dashboard_signs_in_once_and_keeps_the_key_in_an_httponly_cookie(
    secured: Secured,
) -> None:
    s = secured
    # a browser without the cookie is sent to the login form, keeping where it was going
    async with s.http.get(s.at("/runs?status=failed"), headers={"Accept": "text/html"},
                          allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/auth/login?next=%2Fruns%3Fstatus%3Dfailed"
    async with s.http.post(s.at("/auth/login"), data={"key": "pwk_wrong", "next": "/"},
                           allow_redirects=False) as resp:
        assert resp.status == 401
    async with s.http.post(s.at("/auth/login"),
                           data={"key": s.keys["run"], "next": "//evil.example/x"},
                           allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/"  # never an open redirect
        cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("patchwire_key=pwk_")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="):
        assert attribute in cookie
    value = cookie.split(";")[0]
    jar = {"Cookie": value}
    origin = s.url
    assert await status_of(s.http, "POST", s.at(CALL), {**jar, "Origin": origin},
                           json=ORDER) == 200
    # another site's page cannot use the cookie to change anything
    assert await status_of(s.http, "POST", s.at(CALL),
                           {**jar, "Origin": "http://evil.example"}, json=ORDER) == 403
    assert await status_of(s.http, "POST", s.at(CALL), jar, json=ORDER) == 403
    # the cookie's key keeps its scopes
    assert await status_of(s.http, "GET", s.at("/api/v1/connectors"), jar) == 403
    async with s.http.post(s.at("/auth/logout"), allow_redirects=False) as resp:
        assert "Max-Age=0" in resp.headers["Set-Cookie"]


async def test_keys_are_stored_only_as_digests(secured: Secured) -> None:
    found = await leaks_in_database(secured.store_url, secured.keys["admin"])
    assert found == {}
    secret = secured.keys["admin"].split("_", 2)[2]
    assert (await leaks_in_database(secured.store_url, secret)) == {}
    async with await Store.open(secured.store_url) as store:
        record = await KeyRepository(store).get(secured.ids["admin"])
    assert record.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert "secret_hash" not in record.to_dict()


# -- the scope table ---------------------------------------------------------------------------


def test_the_routes_scopes_cover_every_route_of_the_app(tmp_path: Path) -> None:
    app = full_app(tmp_path)

    def required_scope(method: str, path: str) -> str:
        return scope_of(app, method, path)

    seen: dict[tuple[str, str], str] = {}
    for path, operations in app.openapi()["paths"].items():
        concrete = path.replace("{", "").replace("}", "")
        for method in operations:
            seen[(method.upper(), concrete)] = required_scope(method, concrete)
    assert len(seen) > 20
    assert all(scope in (PUBLIC, "read", "run", "approve", "connect", "admin")
               for scope in seen.values())
    # every read of the REST API needs "read" (keys aside); every change at least a scope
    assert {scope for (method, path), scope in seen.items()
            if method == "GET" and path != "/healthz"
            and not path.startswith(("/api/v1/keys", "/api/v1/end-users",
                                     "/api/v1/connect-sessions", "/api/v1/oauth-apps"))
            } == {"read"}
    # a platform's backend follows the links it makes; OAuth apps are the deployment's
    assert seen[("GET", "/api/v1/connect-sessions/token")] == "connect"
    assert {scope for (method, path), scope in seen.items()
            if path.startswith("/api/v1/oauth-apps")} == {"admin"}
    assert {scope for (method, path), scope in seen.items()
            if path.startswith("/api/v1/keys")} == {"admin"}
    expected = {
        ("GET", "/healthz"): PUBLIC,
        ("POST", "/hooks/source"): PUBLIC,
        ("GET", "/metrics"): "read",
        ("GET", "/api/v1/connectors"): "read",
        ("GET", "/api/v1/openapi.json"): "read",
        ("POST", "/api/v1/actions/action/call"): "run",
        ("POST", "/api/v1/tools/name/call"): "run",
        ("POST", "/api/v1/flows/flow_id/runs"): "run",
        ("POST", "/api/v1/runs/run_id/retry"): "run",
        ("POST", "/api/v1/runs/run_id/cancel"): "run",
        ("POST", "/api/v1/runs/retry-failed"): "run",
        ("POST", "/api/v1/approvals/approval_id/approve"): "approve",
        ("POST", "/api/v1/approvals/approval_id/deny"): "approve",
    }
    for (method, path), scope in expected.items():
        assert required_scope(method, path) == scope, (method, path)
    # unlisted changes are admin-only; /mcp is a tool surface
    assert required_scope("POST", "/api/v1/webhook-sources") == "admin"
    assert required_scope("DELETE", "/api/v1/anything-new/1") == "admin"
    assert required_scope("PUT", "/api/v1/actions/x/call") == "admin"
    assert required_scope("GET", "/api/v1/keys") == "admin"
    assert required_scope("POST", "/mcp") == "run"
    assert required_scope("POST", "/mcpx") == "admin"


def test_keys_have_one_shape() -> None:
    assert parse_key("pwk_0123456789ab_" + "x" * 43) == ("0123456789ab", "x" * 43)
    for bad in ("", "pwk_", "pwk_0123456789ab_short", "Bearer pwk_0123456789ab_" + "x" * 43,
                "pwk_0123456789AB_" + "x" * 43):
        assert parse_key(bad) is None


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.mark.slow  # the patchwire command in subprocesses
async def test_keys_commands_create_list_and_revoke_and_serve_needs_an_admin_key(
    cli: Cli,
) -> None:
    created = await cli("keys", "create", "grafana", "--scope", "read")
    assert created.code == 0, created
    key = created.out.strip().splitlines()[-1]
    assert parse_key(key) is not None
    # with only a read key, a public bind is still refused
    refused = await cli("serve", "--host", "0.0.0.0", "--port", "1")
    assert refused.code == 2, refused
    assert "admin API key" in refused.flat_err
    listed = await cli("keys", "list", "--json")
    assert listed.code == 0, listed
    [entry] = listed.json()
    assert entry["name"] == "grafana" and entry["scopes"] == ["read"]
    assert not leaks_in(listed.out, key.split("_", 2)[2])
    bad = await cli("keys", "create", "x", "--scope", "root")
    assert bad.code == 2 and "unknown scope" in bad.flat_err
    revoked = await cli("keys", "revoke", entry["id"])
    assert revoked.code == 0, revoked
    assert (await cli("keys", "list", "--json")).json() == []
    assert (await cli("keys", "list", "--all", "--json")).json()[0]["revoked_at"]
    missing = await cli("keys", "revoke", "ffffffffffff")
    assert missing.code == 1 and "no API key" in missing.flat_err
