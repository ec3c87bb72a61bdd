"""The app with the dashboard on loopback (a pytest plugin: the ``dash`` fixture), for the
dashboard's page tests and its browser tests."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.auth._tokens import TokenSet, mark_needs_reauth
from patchwire.auth.vault import connection_aad
from patchwire.config import Settings
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.store.records import ConnectionRecord
from tests.support.api import Api
from tests.support.flows import flow_settings
from tests.support.servers import serving

#: bound on a run reaching a status, and on any one request
WAIT_S = 10.0


#: an OAuth2 connector whose connections the overview shows token status for
OAUTH_CONNECTOR = """
    name: oauthy
    base_url: "{sandbox_url}/oauth"
    settings:
      sandbox_url: {}
      client_id: {}
      client_secret: {secret: true, required: false}
    auth:
      type: oauth2
      flow: authorization_code
      authorize_url: "{sandbox_url}/oauth/authorize"
      token_url: "{sandbox_url}/oauth/token"
    actions:
      me: {request: {method: GET, path: /userinfo}}
"""


@dataclass
class Dash(Api):
    """The app with the dashboard on loopback, and a client that does not follow
    redirects (the actions' 303s are part of what is tested)."""

    async def page(self, path: str, expect: int = 200, **params: Any) -> str:
        async with self.http.get(self.at(path), params=params) as resp:
            text = await resp.text()
            assert resp.status == expect, text[:2000]
            return text

    async def partial(self, path: str, **params: Any) -> str:
        async with self.http.get(self.at(path), params=params,
                                 headers={"X-Partial": "1"}) as resp:
            assert resp.status == 200
            return await resp.text()

    async def post(self, path: str, data: dict[str, str] | None = None, *,
                   partial: bool = False, origin: str | None = None) -> aiohttp.ClientResponse:
        headers = {"Origin": origin or self.url}
        if partial:
            headers["X-Partial"] = "1"
        resp = await self.http.post(self.at(path), data=data or {}, headers=headers,
                                    allow_redirects=False)
        await resp.read()
        return resp

    async def api(self, method: str, path: str, **body: Any) -> Any:
        async with self.http.request(method, self.at("/api/v1" + path),
                                     json=body if method != "GET" else None) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def run_until(self, run_id: str, status: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_S):
            while True:
                run = await self.api("GET", f"/runs/{run_id}")
                if run["status"] == status:
                    return dict(run)
                await asyncio.sleep(0.02)


async def dashboard_settings(tmp_path: Path, sandbox: Sandbox, canary: str) -> Settings:
    """The test flows, the shop connection ``acme`` and two OAuth2 connections: one with
    a token that expires in an hour, one whose refresh was refused."""
    settings = await flow_settings(tmp_path, sandbox, canary)
    connectors = tmp_path / "connectors"
    connectors.mkdir()
    (connectors / "oauthy.yaml").write_text(textwrap.dedent(OAUTH_CONNECTOR), encoding="utf-8")
    settings = dataclasses.replace(settings, connector_paths=(connectors,))
    async with Patchwire(settings) as pw:
        for name, reauth in (("okta-ana", False), ("okta-bob", True)):
            rec = ConnectionRecord.new(name, "oauthy", settings={"sandbox_url": sandbox.url,
                                                                 "client_id": "dash"})
            tokens = TokenSet(access_token=f"{canary}-access", refresh_token=f"{canary}-rt",
                              expires_at=time.time() + 3600)
            secrets = tokens.merged_into({})
            if reauth:
                secrets = mark_needs_reauth(secrets, "invalid_grant")
            await pw.store.add_connection(dataclasses.replace(
                rec, secrets=pw.vault.encrypt_json(secrets, aad=connection_aad(rec.id))))
    return settings


@pytest.fixture
async def dash(tmp_path: Path, sandbox: Sandbox, canary: str) -> AsyncIterator[Dash]:
    settings = await dashboard_settings(tmp_path, sandbox, canary)
    async with (
        serving(create_app(Patchwire(settings), engine=True)) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as http,
    ):
        yield Dash(url, http, sandbox, canary, settings)


def text_of(html: str) -> str:
    """The page's text, tags dropped and whitespace folded, for content assertions."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def start(dash: Dash, flow: str, **input: Any) -> dict[str, Any]:
    return dict(await dash.api("POST", f"/flows/{flow}/runs", input=input, wait=True))
