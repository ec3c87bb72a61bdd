"""Settings a provider tells, through the hosted connect flow (``/oauth/callback``) and into
calls: QuickBooks' realmId from the callback's query and Salesforce's instance_url from the
token response fill the connector's base URL, against oauth2-mock-server behaving like
them (tests/support/oauth_provider.mjs) and an upstream API on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connect import OAuthApps
from patchwire.connectors import ConnectorRegistry, ConnectorSpec, load_connector_text
from patchwire.errors import SpecError
from patchwire.server import create_app
from tests.support.docs import fenced_blocks
from tests.support.oauth_provider import MockProvider, mock_provider
from tests.support.servers import serve, serving
from tests.support.settings import free_port, local_settings

pytestmark = pytest.mark.slow

CLIENT_ID = "pw-quirks"
CLIENT_SECRET = "pw-quirks-secret-77c1"


def accounting(provider: str) -> ConnectorSpec:
    """QuickBooks' company id from the callback, Salesforce's instance URL from the token
    answer: both in the base URL."""
    return ConnectorSpec.model_validate({
        "name": "ledger", "title": "Ledger",
        "base_url": "{instance_url}/v3/company/{realm_id}",
        "settings": {"client_id": {"required": False},
                     "client_secret": {"secret": True, "required": False},
                     "instance_url": {"required": False}, "realm_id": {"required": False}},
        "auth": {"type": "oauth2", "authorize_url": f"{provider}/authorize",
                 "token_url": f"{provider}/token", "scopes": ["accounting"],
                 "settings_from_token": {"instance_url": "instance_url"},
                 "settings_from_callback": {"realm_id": "realmId"}},
        "retry": {"attempts": 1},
        "actions": {"company": {"request": {"method": "GET", "path": "/companyinfo"}}},
    })


@dataclass
class Site:
    url: str
    pw: Patchwire
    http: aiohttp.ClientSession
    provider: MockProvider
    api: str
    seen: list[tuple[str, str]]

    async def sign_in(self, end_user: str) -> tuple[int, str]:
        """A connect link's sign-in, like a browser: the callback page's (status, html)."""
        async with self.http.post(f"{self.url}/api/v1/connect-sessions", json={
                "end_user": end_user, "connectors": ["ledger"]}) as resp:
            link = (await resp.json())["url"]
        url = f"{link}/ledger"
        for _ in range(2):  # the link's page, then the provider's consent
            async with self.http.get(url, allow_redirects=False) as resp:
                assert resp.status == 302, await resp.text()
                url = resp.headers["Location"]
        assert url.startswith(f"{self.url}/oauth/callback?")
        async with self.http.get(url, allow_redirects=False) as resp:
            return resp.status, await resp.text()


@pytest.fixture
async def site(store_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    seen: list[tuple[str, str]] = []

    async def company(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization", "")))
        return web.json_response({"name": "Acme Books"})

    upstream = web.Application()
    upstream.router.add_get("/v3/company/{realm}/companyinfo", company)
    port = free_port()
    async with mock_provider() as provider, serve(upstream) as api:
        settings = local_settings(tmp_path / "home", database_url=store_url,
                                  public_url=f"http://127.0.0.1:{port}")
        pw = Patchwire(settings, connectors=ConnectorRegistry([accounting(provider.url)]))
        async with (serving(create_app(pw), port) as url,
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http):
            await pw.open()
            await OAuthApps(pw.runtime).set("ledger", client_id=CLIENT_ID,
                                            client_secret=CLIENT_SECRET,
                                            scopes=["accounting"])
            yield Site(url, pw, http, provider, api, seen)


async def test_a_connect_link_saves_the_realm_id_and_instance_url_and_calls_use_them(
        site: Site) -> None:
    await site.provider.behave(callback_extra={"realmId": "9130357766900"},
                               token_extra={"instance_url": site.api})
    status, html = await site.sign_in("u7")
    assert status == 200, html
    [conn] = await site.pw.list_connections(end_user="u7")
    rec = await site.pw.store.get_connection(conn.name)
    assert rec.settings["realm_id"] == "9130357766900"
    assert rec.settings["instance_url"] == site.api
    assert await site.pw.call("ledger.company", end_user="u7") == {"name": "Acme Books"}
    [(path, authorization)] = site.seen
    assert path == "/v3/company/9130357766900/companyinfo"
    assert authorization == "Bearer " + site.pw.runtime.decrypt(rec)["access_token"]


@pytest.mark.parametrize("realm", ["1/../../admin", "1?x=2", "1\r\nX-Evil: 1"])
async def test_a_forged_realm_id_in_the_callback_connects_nothing(
        site: Site, realm: str) -> None:
    await site.provider.behave(callback_extra={"realmId": realm},
                               token_extra={"instance_url": site.api})
    status, html = await site.sign_in("u8")
    assert status == 502 and "invalid_setting" in html
    assert "Traceback" not in html and realm not in html
    assert await site.pw.list_connections(end_user="u8") == []
    assert await site.provider.seen("token") == []


async def test_a_hostile_instance_url_in_the_token_answer_connects_nothing(
        site: Site) -> None:
    await site.provider.behave(callback_extra={"realmId": "1"},
                               token_extra={"instance_url": "https://169.254.169.254"})
    status, html = await site.sign_in("u9")
    assert status == 502 and "invalid_setting" in html
    assert await site.pw.list_connections(end_user="u9") == []


@pytest.mark.parametrize(("settings", "told"), [
    ("{}", "names no setting"),
    ("{realm_id: {}}", "declare it required: false"),
    ("{client_id: {required: false}}", "client's credential"),
])
def test_a_setting_the_provider_tells_must_be_declared_optional_at_load(
        settings: str, told: str) -> None:
    name = "client_id" if "client_id" in settings else "realm_id"
    text = ("name: ledger\nbase_url: https://api.example.com\n"
            f"settings: {settings}\n"
            "auth:\n  type: oauth2\n  authorize_url: https://example.com/authorize\n"
            "  token_url: https://example.com/token\n  client_id: '{client_id}'\n"
            "  client_secret: ''\n"
            f"  settings_from_callback:\n    {name}: realmId\nactions: {{}}\n")
    if "client_id" not in settings:
        text = text.replace("  client_id: '{client_id}'\n", "  client_id: abc\n")
    with pytest.raises(SpecError) as err:
        load_connector_text(text, "ledger.yaml")
    assert "ledger.yaml:" in str(err.value) and told in str(err.value)


def test_every_example_of_the_oauth_quirks_page_loads() -> None:
    blocks = fenced_blocks("connectors/oauth-quirks.md")
    loaded = [load_connector_text(block, f"oauth-quirks.md#{i}")
              for i, block in enumerate(blocks)]
    assert len(loaded) == 8
    quirks = {spec.name for spec in loaded if spec.auth.type == "oauth2"}
    assert len(quirks) == 8
