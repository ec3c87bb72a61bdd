"""Each route declares the scope it needs where it is defined (``requires(...)`` or
``declare(...)``), and the key check in front of the app asks the route a request goes to.
The app's routes are walked here, a sample of them table-tested, and the declaration is
shown to be what decides, over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from fastapi import APIRouter, FastAPI
from starlette.routing import Route

from patchwire import Patchwire
from patchwire.access import (
    PUBLIC,
    AccessPolicy,
    ApiKeyMiddleware,
    declarations,
    declare,
    every_route,
    requires,
)
from patchwire.server import create_app
from patchwire.store import Store
from patchwire.store.keys import KeyRepository
from tests.support.access import full_app, scope_of
from tests.support.servers import serving
from tests.support.settings import local_settings


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return full_app(tmp_path_factory.mktemp("app"))


def test_every_route_of_the_app_declares_exactly_one_scope(app: FastAPI) -> None:
    routes = list(every_route(app.router.routes))
    assert len(routes) > 60  # the API, the dashboard, MCP, webhooks, login, assets, docs
    undeclared = {getattr(r, "path", repr(r)): declarations(r) for r in routes
                  if len(declarations(r)) != 1}
    assert undeclared == {}


@pytest.mark.parametrize(("method", "path", "scope"), [
    # admin only, even to read
    ("GET", "/api/v1/keys", "admin"),
    ("POST", "/api/v1/keys/0123456789ab/revoke", "admin"),
    ("POST", "/api/v1/definitions/reload", "admin"),
    ("POST", "/api/v1/webhook-sources", "admin"),
    ("PATCH", "/api/v1/webhook-sources/github", "admin"),
    ("DELETE", "/api/v1/subscriptions/s1", "admin"),
    ("POST", "/api/v1/syncs/orders/run", "admin"),
    # run: calls, tools, runs, redeliveries, replays, MCP, the dashboard's actions
    ("POST", "/api/v1/actions/shop.get_order/call", "run"),
    ("POST", "/api/v1/connections/acme/test", "run"),
    ("POST", "/api/v1/tools/shop_get_order/call", "run"),
    ("POST", "/api/v1/flows/f/runs", "run"),
    ("POST", "/api/v1/runs/retry-failed", "run"),
    ("POST", "/api/v1/runs/r1/cancel", "run"),
    ("POST", "/api/v1/deliveries/d1/redeliver", "run"),
    ("POST", "/api/v1/webhooks/inbox/e1/replay", "run"),
    ("POST", "/mcp", "run"),
    ("GET", "/mcp", "run"),
    ("DELETE", "/mcp", "run"),
    ("POST", "/runs/r1/retry", "run"),
    ("POST", "/playground/shop_get_order", "run"),
    ("POST", "/deliveries/d1/redeliver", "run"),
    # approve
    ("POST", "/api/v1/approvals/a1/approve", "approve"),
    ("POST", "/api/v1/approvals/a1/deny", "approve"),
    ("POST", "/approvals/a1/approve", "approve"),
    ("POST", "/approvals/a1/deny", "approve"),
    # read
    ("GET", "/api/v1/connectors", "read"),
    ("GET", "/api/v1/runs", "read"),
    ("GET", "/api/v1/openapi.json", "read"),
    ("GET", "/api/docs", "read"),
    ("GET", "/metrics", "read"),
    ("GET", "/", "read"),
    ("GET", "/runs/r1", "read"),
    ("GET", "/tool-audit", "read"),
    # public: verified by their own means, or needed before there is a key
    ("GET", "/healthz", PUBLIC),
    ("POST", "/hooks/github", PUBLIC),
    ("GET", "/hooks/github", PUBLIC),
    ("GET", "/auth/login", PUBLIC),
    ("POST", "/auth/login", PUBLIC),
    ("POST", "/auth/logout", PUBLIC),
    ("GET", "/assets/dashboard.css", PUBLIC),
    # no route: reading needs read, changing needs admin (then 404 or 405)
    ("GET", "/nope", "read"),
    ("DELETE", "/api/v1/anything-new/1", "admin"),
    ("PUT", "/api/v1/actions/x/call", "admin"),
    ("POST", "/mcpx", "admin"),
    # connect links: the token in the URL (or the OAuth2 state) is the credential
    ("GET", "/oauth/callback", PUBLIC),
    ("POST", "/oauth/callback", "admin"),
    ("GET", "/connect/some-token", PUBLIC),
    ("GET", "/connect/some-token/shop", PUBLIC),
    ("POST", "/connect/some-token/shop", PUBLIC),
    # no public prefix without a route behind it
    ("GET", "/oauth/other", "read"),
    ("GET", "/connect/a/b/c", "read"),
    ("GET", "/favicon.ico", "read"),
    ("GET", "/static/x.css", "read"),
])
def test_a_request_needs_the_scope_its_route_declares(app: FastAPI, method: str, path: str,
                                                      scope: str) -> None:
    assert scope_of(app, method, path) == scope


def test_an_unknown_scope_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        requires("root")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown scope"):
        declare(Route("/x", endpoint=lambda: None), "everything")  # type: ignore[arg-type]


async def test_the_oauth_callback_is_public_and_a_forged_state_gets_nothing(
        tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "home",
                              database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    async with await Store.open(settings.database_url) as store:
        _, key = await KeyRepository(store).create("ops", ["read"])
    app = create_app(Patchwire(settings), access=AccessPolicy(cache_ttl=0))
    async with serving(app) as url, aiohttp.ClientSession() as http:
        # public (a provider's redirect carries no key), verified by its single-use state
        async with http.get(url + "/oauth/callback?state=x&code=y") as resp:
            assert resp.status == 400
            assert "Not connected" in await resp.text()
        # what has no route behind the prefix is not public
        async with http.get(url + "/oauth/other") as resp:
            assert resp.status == 401
        async with http.get(url + "/oauth/other",
                            headers={"Authorization": f"Bearer {key}"}) as resp:
            assert resp.status == 404


def _bare_app(store: Store | None = None) -> FastAPI:
    """Two routes, and the key check in front when a store is given."""
    app = FastAPI()
    router = APIRouter()

    @router.post("/change", dependencies=[requires("run")])
    async def change() -> dict[str, bool]:
        return {"changed": True}

    @router.get("/open", dependencies=[requires(PUBLIC)])
    async def open_() -> dict[str, bool]:
        return {"open": True}

    app.include_router(router)
    if store is not None:
        app.add_middleware(ApiKeyMiddleware, router=app.router, store=lambda: store,
                           policy=AccessPolicy(cache_ttl=0))
    return app


async def test_a_route_mounted_without_the_key_check_refuses_rather_than_opens() -> None:
    async with serving(_bare_app()) as url, aiohttp.ClientSession() as http:
        async with http.post(url + "/change") as resp:
            assert resp.status == 403
            assert "'run' scope" in (await resp.json())["detail"]
        async with http.get(url + "/open") as resp:
            assert resp.status == 200


async def test_the_key_check_in_front_lets_through_what_the_route_declares(
    tmp_path: Path,
) -> None:
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}") as store:
        app = _bare_app(store)
        async with serving(app) as url, aiohttp.ClientSession() as http:
            # no key in the store: open, as before there were keys
            async with http.post(url + "/change") as resp:
                assert resp.status == 200, await resp.text()
            repo = KeyRepository(store)
            _, reader = await repo.create("reader", ["read"])
            _, runner = await repo.create("runner", ["run"])
            for key, status in ((None, 401), (reader, 403), (runner, 200)):
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                async with http.post(url + "/change", headers=headers) as resp:
                    assert resp.status == status, (key, await resp.text())
            async with http.get(url + "/open") as resp:
                assert resp.status == 200
