"""Behind a reverse proxy: links and the OAuth2 redirect URI come from ``public_url``,
never from the request's ``Host``; the public name is accepted as this server's, and a form
posted from the public origin is this server's own page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.connect import OAuthApps
from patchwire.connectors import ConnectorRegistry
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.connect import (
    CLIENT_ID,
    CLIENT_SECRET,
    Site,
    oauth_connector,
    shop_connector,
)
from tests.support.servers import serving
from tests.support.settings import local_settings

PUBLIC = "https://pw.example.com/patchwire"


@pytest.fixture
async def proxied(store_url: str, tmp_path: Path, sandbox: Sandbox,
                  canary: str) -> AsyncIterator[Site]:
    settings = local_settings(tmp_path / "home", database_url=store_url,
                              public_url=PUBLIC + "/")
    registry = ConnectorRegistry([shop_connector(sandbox), oauth_connector(sandbox)])
    pw = Patchwire(settings, connectors=registry)
    async with (
        serving(create_app(pw)) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Site(url, pw, http, sandbox, canary, store_url)


async def test_a_link_is_under_the_public_url_whatever_host_the_request_names(
        proxied: Site) -> None:
    async with proxied.http.post(
            proxied.at("/api/v1/connect-sessions"),
            json={"end_user": "u1", "connectors": ["shop"]},
            headers={"X-Forwarded-Host": "evil.example"}) as resp:
        assert resp.status == 201, await resp.text()
        link = await resp.json()
    assert link["url"] == f"{PUBLIC}/connect/{link['token']}"


async def test_the_redirect_uri_is_the_public_urls_callback(proxied: Site) -> None:
    await OAuthApps(proxied.pw.runtime).set("oauthy", client_id=CLIENT_ID,
                                            client_secret=CLIENT_SECRET)
    link = await proxied.link(connectors=("oauthy",))
    status, _, headers = await proxied.page(proxied.at(f"/connect/{link['token']}/oauthy"))
    assert status == 302
    query = parse_qs(urlsplit(headers["Location"]).query)
    assert query["redirect_uri"] == [f"{PUBLIC}/oauth/callback"]


async def test_the_public_name_and_origin_are_this_servers_own(proxied: Site) -> None:
    link = await proxied.link()
    page = proxied.at(f"/connect/{link['token']}/shop")
    # a proxy that keeps the public Host
    status, html, _ = await proxied.page(page, headers={"Host": "pw.example.com"})
    assert status == 200, html
    # a proxy that rewrites Host: the browser's Origin is still the public one
    status, html, _ = await proxied.post_form(page, {"api_key": proxied.canary},
                                              origin="https://pw.example.com")
    assert status == 200, html
    assert len(await proxied.pw.list_connections(end_user="u1")) == 1


async def test_another_origin_is_still_refused_behind_the_proxy(proxied: Site) -> None:
    link = await proxied.link()
    status, _, _ = await proxied.post_form(proxied.at(f"/connect/{link['token']}/shop"),
                                           {"api_key": proxied.canary},
                                           origin="https://pw.example.com.evil.example")
    assert status == 403
    assert await proxied.pw.list_connections(end_user="u1") == []
