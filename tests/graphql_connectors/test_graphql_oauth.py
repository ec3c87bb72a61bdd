"""An OAuth2 GraphQL API that answers a 200 with an UNAUTHENTICATED error for a token it
no longer takes: the call path renews the token once and the call succeeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.sandbox import Sandbox
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET
from tests.support.servers import serve
from tests.support.settings import local_settings


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(seed=0) as running:
        yield running


async def test_an_unauthenticated_graphql_error_renews_the_oauth2_token_once(
        tmp_path: Path, sandbox: Sandbox) -> None:
    seen: list[str] = []

    async def graphql(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        seen.append(token)
        if len(seen) == 1:  # the first token is refused, as if revoked upstream
            return web.json_response({"data": None, "errors": [
                {"message": "token revoked", "extensions": {"code": "UNAUTHENTICATED"}}]})
        return web.json_response({"data": {"viewer": {"login": "ada"}}})

    app = web.Application()
    app.router.add_post("/graphql", graphql)
    spec = ConnectorSpec.model_validate({
        "name": "gql", "protocol": "graphql", "base_url": "{api_url}",
        "settings": {"api_url": {}, "sandbox_url": {}, "client_id": {},
                     "client_secret": {"secret": True}},
        "auth": {"type": "oauth2", "flow": "client_credentials",
                 "token_url": "{sandbox_url}/oauth/token"},
        "retry": {"attempts": 1},
        "actions": {"viewer": {"graphql": {"document": "{ viewer { login } }"}}},
    })
    async with serve(app) as url, Patchwire(local_settings(tmp_path / "home"),
                                            connectors=ConnectorRegistry([spec])) as pw:
        await pw.add_connection("gql", "acme", {
            "api_url": url, "sandbox_url": sandbox.url, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET})
        assert await pw.call("gql.viewer") == {"login": "ada"}
    assert len(seen) == 2 and seen[0] != seen[1]
