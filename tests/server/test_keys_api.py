"""``/api/v1/keys``: creating, listing, reading and revoking API keys over real HTTP (uvicorn
on loopback), on SQLite and PostgreSQL — admin scope only, the secret shown once."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.server import create_app
from patchwire.store import Store
from patchwire.store.keys import KeyRepository, parse_key
from tests.support.leaks import leaks_in
from tests.support.servers import serving
from tests.support.settings import local_settings

KEYS = "/api/v1/keys"
PROBLEM = "application/problem+json"
#: what a listed key shows, no more
LISTED_FIELDS = {"id", "name", "scopes", "prefix", "created_at", "last_used_at", "revoked_at"}


@dataclass
class Server:
    url: str
    http: aiohttp.ClientSession
    store_url: str
    admin: str  # the full admin key seeded in the store ("" when none was)

    def at(self, path: str) -> str:
        return self.url + path

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def request(self, method: str, path: str, key: str | None = None,
                      **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = self.bearer(key) if key else {}
        async with self.http.request(method, self.at(path), headers=headers, **kw) as resp:
            body = await resp.json(content_type=None) if await resp.read() else None
            return resp.status, body, resp


async def _serve(store_url: str, home: Path, seed_admin: bool) -> AsyncIterator[Server]:
    settings = local_settings(home, database_url=store_url)
    admin = ""
    async with Patchwire(settings) as setup:
        if seed_admin:
            _, admin = await KeyRepository(setup.store).create("root", ["admin"])
    # the default key cache (1 s): changes through the API must not wait for it
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Server(url, http, store_url, admin)


@pytest.fixture
async def server(store_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    """The app with one admin key in the store."""
    async for s in _serve(store_url, tmp_path / "home", seed_admin=True):
        yield s


@pytest.fixture
async def open_server(store_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    """The app with no key yet (loopback: open)."""
    async for s in _serve(store_url, tmp_path / "home", seed_admin=False):
        yield s


def assert_problem(status: int, body: Any, resp: aiohttp.ClientResponse, expected: int,
                   code: str) -> None:
    assert status == expected, body
    assert resp.content_type == PROBLEM
    assert body["status"] == expected
    assert body["type"] == f"https://patchwire.dev/errors/{code}"
    assert body["title"] and body["detail"]


async def test_a_key_created_through_the_api_authenticates_requests_at_once(
    open_server: Server,
) -> None:
    s = open_server
    status, body, resp = await s.request("POST", KEYS, json={"name": " ops ",
                                                             "scopes": ["admin"]})
    assert status == 201, body
    assert resp.headers["Location"] == f"{KEYS}/{body['id']}"
    assert resp.headers["Cache-Control"] == "no-store"
    assert body["name"] == "ops" and body["scopes"] == ["admin"]
    assert body["revoked_at"] is None and body["last_used_at"] is None
    assert parse_key(body["key"]) == (body["id"], body["key"].split("_", 2)[2])
    assert body["key"].startswith(body["prefix"])
    admin = body["key"]
    # a key exists now: the server wants one, and takes the new one without waiting
    status, body, _ = await s.request("GET", KEYS)
    assert status == 401
    status, listed, _ = await s.request("GET", KEYS, admin)
    assert status == 200 and [k["name"] for k in listed] == ["ops"]
    # a key made with it works for its scope: same repository as `patchwire keys`
    status, body, _ = await s.request("POST", KEYS, admin,
                                      json={"name": "grafana", "scopes": ["read", "read"]})
    assert status == 201 and body["scopes"] == ["read"]
    reader = body["key"]
    assert (await s.request("GET", "/api/v1/connectors", reader))[0] == 200
    async with await Store.open(s.store_url) as store:
        stored = {k.name: k for k in await KeyRepository(store).list()}
    assert set(stored) == {"ops", "grafana"}
    secret = reader.split("_", 2)[2]
    assert stored["grafana"].secret_hash == hashlib.sha256(secret.encode()).hexdigest()


async def test_listing_and_reading_keys_never_shows_a_secret_or_its_digest(
    server: Server, caplog: pytest.LogCaptureFixture,
) -> None:
    s = server
    # Patchwire's own logs, debug included (the database driver's debug lines echo every
    # bound parameter, digests too: that is a library's, at a level nobody serves with)
    caplog.set_level(logging.DEBUG, logger="patchwire")
    caplog.set_level(logging.INFO)
    status, created, _ = await s.request("POST", KEYS, s.admin,
                                         json={"name": "bot", "scopes": ["run", "read"]})
    assert status == 201
    texts = [s.admin, created["key"]]
    secrets = [t.split("_", 2)[2] for t in texts]
    async with await Store.open(s.store_url) as store:
        digests = [k.secret_hash for k in await KeyRepository(store).list()]
    assert len(digests) == 2
    answers: list[str] = []
    for method, path in [("GET", KEYS), ("GET", f"{KEYS}?include_revoked=true"),
                         ("GET", f"{KEYS}/{created['id']}"),
                         ("POST", f"{KEYS}/{created['id']}/revoke"),
                         ("GET", f"{KEYS}?include_revoked=true")]:
        async with s.http.request(method, s.at(path), headers=s.bearer(s.admin)) as resp:
            assert resp.status == 200, path
            answers.append(await resp.text())
            body = await resp.json()
        for entry in body if isinstance(body, list) else [body]:
            assert set(entry) == LISTED_FIELDS, path
    assert '"scopes":["read","run"]' in answers[2].replace(" ", "")
    for material in (*texts, *secrets, *digests):
        for answer in answers:
            assert not leaks_in(answer, material)
        assert not leaks_in(caplog.text, material)


async def test_a_key_revoked_through_the_api_is_refused_with_401(server: Server) -> None:
    s = server
    status, created, _ = await s.request("POST", KEYS, s.admin,
                                         json={"name": "grafana", "scopes": ["read"]})
    assert status == 201
    reader = created["key"]
    assert (await s.request("GET", "/api/v1/connectors", reader))[0] == 200
    status, revoked, _ = await s.request("POST", f"{KEYS}/{created['id']}/revoke", s.admin)
    assert status == 200 and revoked["revoked_at"] is not None
    # refused at once (the server's key cache is refreshed by the revocation)
    status, body, resp = await s.request("GET", "/api/v1/connectors", reader)
    assert_problem(status, body, resp, 401, "invalid_api_key")
    # revoking again changes nothing; the list hides it unless asked
    status, again, _ = await s.request("POST", f"{KEYS}/{created['id']}/revoke", s.admin)
    assert status == 200 and again["revoked_at"] == revoked["revoked_at"]
    listed = (await s.request("GET", KEYS, s.admin))[1]
    assert [k["name"] for k in listed] == ["root"]
    listed = (await s.request("GET", f"{KEYS}?include_revoked=true", s.admin))[1]
    assert {k["name"]: k["revoked_at"] is not None for k in listed} == {
        "root": False, "grafana": True}
    # the admin key is still good
    assert (await s.request("GET", "/api/v1/connectors", s.admin))[0] == 200


async def test_read_run_and_approve_keys_get_403_on_every_keys_route(server: Server) -> None:
    s = server
    keys: dict[str, str] = {}
    ids: dict[str, str] = {}
    for scope in ("read", "run", "approve"):
        status, body, _ = await s.request("POST", KEYS, s.admin,
                                          json={"name": f"{scope}-key", "scopes": [scope]})
        assert status == 201
        keys[scope], ids[scope] = body["key"], body["id"]
    keys["read+run+approve"] = (await s.request(
        "POST", KEYS, s.admin, json={"name": "all-but-admin",
                                     "scopes": ["read", "run", "approve"]}))[1]["key"]
    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", KEYS, {}),
        ("GET", f"{KEYS}/{ids['read']}", {}),
        ("POST", KEYS, {"json": {"name": "escalate", "scopes": ["admin"]}}),
        ("POST", f"{KEYS}/{ids['read']}/revoke", {}),
    ]
    for key in keys.values():
        for method, path, options in routes:
            status, body, resp = await s.request(method, path, key, **options)
            assert_problem(status, body, resp, 403, "insufficient_scope")
            assert "'admin' scope" in body["detail"]
    async with await Store.open(s.store_url) as store:
        listed = await KeyRepository(store).list()
    assert "escalate" not in {k.name for k in listed}
    assert all(k.revoked_at is None for k in listed)


async def test_unknown_scopes_and_bad_names_are_422_and_unknown_keys_404(
    server: Server,
) -> None:
    s = server
    for body, where in [({"name": "x", "scopes": ["root"]}, "$.scopes[0]"),
                        ({"name": "x", "scopes": ["read", "superuser"]}, "$.scopes[1]"),
                        ({"name": "x", "scopes": []}, "$.scopes"),
                        ({"name": "   ", "scopes": ["read"]}, "$.name"),
                        ({"name": "x" * 201, "scopes": ["read"]}, "$.name"),
                        ({"name": "ops\nadmin", "scopes": ["read"]}, "$.name"),
                        ({"name": "nul\u0000", "scopes": ["read"]}, "$.name"),
                        ({"scopes": ["read"]}, "$.name")]:
        status, problem, resp = await s.request("POST", KEYS, s.admin, json=body)
        assert_problem(status, problem, resp, 422, "invalid_request")
        assert [p["path"] for p in problem["problems"]] == [where], problem
    for method, path in [("GET", f"{KEYS}/000000000000"),
                         ("POST", f"{KEYS}/000000000000/revoke"),
                         ("POST", f"{KEYS}/no-such-key/revoke")]:
        status, problem, resp = await s.request(method, path, s.admin)
        assert_problem(status, problem, resp, 404, "unknown_api_key")
    # nothing was created by the refused requests
    assert [k["name"] for k in (await s.request("GET", KEYS, s.admin))[1]] == ["root"]
