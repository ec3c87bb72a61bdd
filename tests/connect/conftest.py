"""Fixtures for connect links: a served app whose public URL is where it listens, the
sandbox shop (API key) and the sandbox's OAuth2 server as connectors, and a client that
drives the hosted pages like a browser (no redirects followed unless asked)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvicorn

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.servers import SERVER_TIMEOUT_S
from tests.support.settings import free_port, local_settings

#: the sandbox's confidential OAuth client (sandbox/_oauth.py)
CLIENT_ID = "patchwire-sandbox"
CLIENT_SECRET = "sandbox-client-secret"


def shop_connector(sandbox: Sandbox) -> ConnectorSpec:
    """The built-in shop, its sandbox URL the running sandbox's (a setting with a default
    is the deployment's: the form does not ask for it)."""
    spec = ConnectorRegistry.load(()).get("shop")
    url = spec.settings["sandbox_url"].model_copy(update={"default": sandbox.url})
    return spec.model_copy(update={"settings": {**spec.settings, "sandbox_url": url}})


def oauth_connector(sandbox: Sandbox) -> ConnectorSpec:
    """A connector signing in at the sandbox's OAuth2 server; the client id and secret
    are not the connection's (the deployment's OAuth app supplies them)."""
    return ConnectorSpec.model_validate({
        "name": "oauthy", "title": "Sandbox Account",
        "base_url": "{sandbox_url}/oauth",
        "settings": {
            "sandbox_url": {"default": sandbox.url},
            "client_id": {"required": False},
            "client_secret": {"secret": True, "required": False},
        },
        "auth": {"type": "oauth2", "authorize_url": "{sandbox_url}/oauth/authorize",
                 "token_url": "{sandbox_url}/oauth/token", "scopes": ["profile"]},
        "retry": {"attempts": 1},
        "test": {"action": "me"},
        "actions": {"me": {"request": {"method": "GET", "path": "/userinfo"}}},
    })


@asynccontextmanager
async def serving_at(app: Any, port: int) -> AsyncIterator[str]:
    """The app under uvicorn on 127.0.0.1:``port`` (the public URL names that port)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(SERVER_TIMEOUT_S):
            while not server.started:  # bounded by the timeout above
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn exited before it started serving")
                await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, SERVER_TIMEOUT_S)


@dataclass
class Site:
    """The served app, the Patchwire behind it, and a browser-like client."""

    url: str
    pw: Patchwire
    http: aiohttp.ClientSession
    sandbox: Sandbox
    canary: str
    database_url: str

    def at(self, path: str) -> str:
        return self.url + path

    async def link(self, end_user: str = "u1", connectors: tuple[str, ...] = ("shop",),
                   **body: Any) -> dict[str, Any]:
        async with self.http.post(self.at("/api/v1/connect-sessions"), json={
                "end_user": end_user, "connectors": list(connectors), **body}) as resp:
            assert resp.status == 201, await resp.text()
            created: dict[str, Any] = await resp.json()
        return created

    async def page(self, url: str, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
        async with self.http.get(url, allow_redirects=False, **kwargs) as resp:
            return resp.status, await resp.text(), dict(resp.headers)

    async def post_form(self, url: str, data: dict[str, str], *,
                        origin: str | None = "own") -> tuple[int, str, dict[str, str]]:
        headers = {}
        if origin is not None:  # a browser sends the page's origin with a form post
            headers["Origin"] = self.url if origin == "own" else origin
        async with self.http.post(url, data=data, headers=headers,
                                  allow_redirects=False) as resp:
            return resp.status, await resp.text(), dict(resp.headers)


@pytest.fixture
async def site(store_url: str, tmp_path: Path, sandbox: Sandbox,
               canary: str) -> AsyncIterator[Site]:
    port = free_port()
    settings = local_settings(tmp_path / "home", database_url=store_url,
                              public_url=f"http://127.0.0.1:{port}")
    registry = ConnectorRegistry([shop_connector(sandbox), oauth_connector(sandbox)])
    pw = Patchwire(settings, connectors=registry)
    async with (
        serving_at(create_app(pw), port) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Site(url, pw, http, sandbox, canary, store_url)
