"""Fixtures for connect links: a served app whose public URL is where it listens, the
sandbox shop (API key) and the sandbox's OAuth2 server as connectors, and a client that
drives the hosted pages like a browser (no redirects followed unless asked)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.connect import (  # noqa: F401 - the connect tests take the client here
    CLIENT_ID,
    CLIENT_SECRET,
    oauth_connector,
    shop_connector,
)
from tests.support.servers import serving
from tests.support.settings import free_port, local_settings


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
        serving(create_app(pw), port) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Site(url, pw, http, sandbox, canary, store_url)
