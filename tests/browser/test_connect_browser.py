"""Connect links in a real browser (Chromium driven by Playwright, ``tests.support.browser``):
what an end user does with the link the chat hands them. They sign in at
oauth2-mock-server (an OAuth2 server nobody here wrote) and come back to the chat; approve
the sandbox OAuth server's consent page; type a wrong shop key, then the right one. Then
their MCP tool call works through the connection they made, and another end user's token
sees none of it. The pages refuse being framed and a form posted from another site's page.
Screenshots of each step go to ``.artifacts/screenshots/connect-*.png``.

Every server is real and on loopback: the app (``create_app``, its public URL where it
listens), the sandbox, oauth2-mock-server, and the pages of other sites (the chat a link
returns to, an attacker's).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
import sqlalchemy as sa
from aiohttp import web
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from patchwire.store import Store
from tests.support.browser import SHOW_MS, chromium_page, shot
from tests.support.connect import CLIENT_ID, CLIENT_SECRET, oauth_connector, shop_connector
from tests.support.oauth_mock import oauth2_mock_server
from tests.support.servers import serve, serving
from tests.support.settings import free_port, local_settings

#: slow (Chromium driven by Playwright, the npm oauth2-mock-server): out of the quick loop
pytestmark = pytest.mark.slow

#: bound on one REST request and on one MCP session, in seconds
WAIT_S = SHOW_MS / 1000
#: the deployment's OAuth app at oauth2-mock-server (which accepts any client)
MOCK_CLIENT_ID = "patchwire-deployment"
MOCK_CLIENT_SECRET = "mock-deployment-secret"
DONE = "Connected — you can return to the chat."


def mock_connector(mock_url: str) -> ConnectorSpec:
    """A connector signing in at oauth2-mock-server, which serves /authorize, /token and
    /userinfo at its root; the client is the deployment's OAuth app."""
    return ConnectorSpec.model_validate({
        "name": "mocky", "title": "Mock Provider",
        "base_url": "{provider_url}",
        "settings": {
            "provider_url": {"default": mock_url},
            "client_id": {"required": False},
            "client_secret": {"secret": True, "required": False},
        },
        "auth": {"type": "oauth2", "authorize_url": "{provider_url}/authorize",
                 "token_url": "{provider_url}/token", "scopes": ["openid", "profile"]},
        "retry": {"attempts": 1},
        "actions": {"me": {"request": {"method": "GET", "path": "/userinfo"}}},
    })


@dataclass
class Site:
    """The served app (its public URL is where it listens), the Patchwire behind it, an
    operator's REST client, and the browser's page."""

    url: str
    pw: Patchwire
    http: aiohttp.ClientSession
    sandbox: Sandbox
    canary: str
    database_url: str
    page: Any
    #: subresources a page could not load (a stylesheet...): none may be missing
    broken: list[str]

    def at(self, path: str) -> str:
        return self.url + path

    async def rest(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                   expect: int = 200) -> Any:
        """``/api/v1{path}``: as the operator (loopback, no keys), or with an end user's
        ``token``; the status must be ``expect``."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.at(f"/api/v1{path}"), json=body,
                                     headers=headers) as resp:
            text = await resp.text()
            assert resp.status == expect, text
            return json.loads(text) if text else None

    async def link(self, end_user: str, connectors: list[str], **body: Any) -> dict[str, Any]:
        created: dict[str, Any] = await self.rest(
            "POST", "/connect-sessions", {"end_user": end_user, "connectors": connectors,
                                          **body}, expect=201)
        assert created["url"] == self.at(f"/connect/{created['token']}")
        return created

    async def session(self, token: str) -> dict[str, Any]:
        return dict(await self.rest("GET", f"/connect-sessions/{token}"))

    async def connections(self, end_user: str) -> list[dict[str, Any]]:
        return list(await self.rest("GET", f"/connections?end_user={end_user}"))

    async def end_user_token(self, end_user: str) -> str:
        created = await self.rest("POST", f"/end-users/{end_user}/tokens", {}, expect=201)
        return str(created["token"])

    async def stored_rows(self) -> str:
        """Every stored connection row, as text: what a database leak would show."""
        async with await Store.open(self.database_url) as store, store.engine.connect() as db:
            return str((await db.execute(sa.text("SELECT * FROM connections"))).all())


@pytest.fixture
async def site(store_url: str, tmp_path: Path, sandbox: Sandbox,
               canary: str) -> AsyncIterator[Site]:
    port = free_port()
    settings = local_settings(tmp_path / "home", database_url=store_url,
                              public_url=f"http://127.0.0.1:{port}")
    async with oauth2_mock_server() as mock_url:
        registry = ConnectorRegistry([shop_connector(sandbox), oauth_connector(sandbox),
                                      mock_connector(mock_url)])
        pw = Patchwire(settings, connectors=registry)
        async with (
            serving(create_app(pw), port) as url,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as http,
            chromium_page() as page,
        ):
            broken: list[str] = []

            def answered(response: Any) -> None:
                if response.request.resource_type != "document" and response.status >= 400:
                    broken.append(f"{response.status} {response.url}")

            def failed(request: Any) -> None:
                # a page (or a frame) refused is what some steps check; a stylesheet is not
                if request.resource_type != "document":
                    broken.append(f"failed {request.url}")

            page.on("response", answered)
            page.on("requestfailed", failed)
            yield Site(url, pw, http, sandbox, canary, store_url, page, broken)
            assert broken == [], f"what the pages could not load: {broken}"


@asynccontextmanager
async def other_site(pages: Mapping[str, str]) -> AsyncIterator[str]:
    """Another origin on loopback (another port): ``pages`` maps paths to HTML."""
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=pages[request.path], content_type="text/html")

    app = web.Application()
    for path in pages:
        app.router.add_get(path, handler)
    async with serve(app) as url:
        yield url


@asynccontextmanager
async def mcp_session(url: str, token: str) -> AsyncIterator[Client]:
    """An MCP session over Streamable HTTP, sending an end user's token."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                              timeout=httpx2.Timeout(WAIT_S))
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http),
                            mode="legacy") as client:
        yield client


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def expect_done(page: Any) -> None:
    from playwright.async_api import expect

    await expect(page.locator("#connect-done")).to_have_text(DONE)
    await expect(page).to_have_title("Connected")


async def test_an_end_user_signs_in_at_oauth2_mock_server_and_returns_to_the_chat(
        site: Site) -> None:
    from playwright.async_api import expect

    page = site.page
    await site.rest("PUT", "/oauth-apps/mocky", {"client_id": MOCK_CLIENT_ID,
                                                 "client_secret": MOCK_CLIENT_SECRET})
    chat = "<!doctype html><title>Chat</title><h1 id='chat'>Back in the chat</h1>"
    async with other_site({"/chat": chat}) as chat_url:
        link = await site.link("u1", ["mocky"], return_url=f"{chat_url}/chat")
        await page.goto(link["url"])
        await expect(page.locator("h1")).to_have_text("Connect an account")
        button = page.get_by_role("link", name="Connect Mock Provider")
        await expect(button).to_be_visible()
        await shot(page, "connect-01-oauth2-mock-offer")
        # to the provider (which approves at once), back to /oauth/callback, then to the
        # chat the link was made for
        await button.click()
        await page.wait_for_url(f"{chat_url}/chat")
        await expect(page.locator("#chat")).to_have_text("Back in the chat")
        await shot(page, "connect-02-oauth2-mock-back-in-chat")

    assert (await site.session(link["token"]))["status"] == "connected"
    [conn] = await site.connections("u1")
    assert (conn["connector"], conn["is_default"]) == ("mocky", True)
    assert conn["token"]["valid"] is True and conn["token"]["needs_reauth"] is False
    # the tokens oauth2-mock-server issued (JWTs it signed), sealed in the row
    record = await site.pw.store.get_connection(conn["name"])
    stored = site.pw.runtime.decrypt(record)
    access, refresh = stored["access_token"], stored["refresh_token"]
    assert access.count(".") == 2 and refresh
    rows = await site.stored_rows()
    assert conn["name"] in rows
    assert access not in rows and refresh not in rows and MOCK_CLIENT_SECRET not in rows
    # and the end user's call goes out with them
    assert (await site.pw.call("mocky.me", end_user="u1"))["sub"]


async def test_an_end_user_approves_the_sandbox_consent_page(site: Site) -> None:
    from playwright.async_api import expect

    page = site.page
    oauth = site.sandbox.state.oauth
    oauth.auto_approve = False
    await site.rest("PUT", "/oauth-apps/oauthy", {"client_id": CLIENT_ID,
                                                  "client_secret": CLIENT_SECRET,
                                                  "scopes": ["profile"]})
    link = await site.link("u1", ["shop", "oauthy"])
    await page.goto(link["url"])
    await expect(page.locator("#connectors a")).to_have_count(2)
    await shot(page, "connect-03-sandbox-offer")
    await page.get_by_role("link", name="Connect Sandbox Account").click()
    # the provider's own page: a person decides
    await page.wait_for_url(re.compile(re.escape(f"{site.sandbox.url}/oauth/authorize?")))
    await expect(page.locator("h1")).to_have_text(f"Grant {CLIENT_ID} access?")
    assert oauth.stats.token_requests["authorization_code"] == 0
    await shot(page, "connect-04-sandbox-consent")
    await page.get_by_role("button", name="Approve").click()
    await page.wait_for_url(re.compile(re.escape(f"{site.url}/oauth/callback?")))
    await expect_done(page)
    await shot(page, "connect-05-sandbox-connected")

    assert oauth.stats.token_requests["authorization_code"] == 1
    assert (await site.session(link["token"]))["status"] == "connected"
    [conn] = await site.connections("u1")
    assert conn["connector"] == "oauthy" and conn["token"]["valid"] is True
    me = await site.pw.call("oauthy.me", end_user="u1")
    assert (me["client_id"], me["scope"]) == (CLIENT_ID, "profile")
    stored = site.pw.runtime.decrypt(await site.pw.store.get_connection(conn["name"]))
    access, refresh = stored["access_token"], stored["refresh_token"]
    assert access.startswith("at_") and refresh.startswith("rt_")
    rows = await site.stored_rows()
    # the tokens themselves (their 3-letter prefixes can occur in random ciphertext)
    assert access not in rows and refresh not in rows
    # the link worked once: opened again, it says so
    again = await page.goto(link["url"])
    assert again is not None and again.status == 410
    await expect(page.locator("#connect-problem")).to_contain_text("already used")


async def test_a_wrong_key_is_refused_then_the_right_one_serves_that_end_users_mcp_calls_alone(
        site: Site) -> None:
    from playwright.async_api import expect

    page = site.page
    link = await site.link("u1", ["shop"])
    await page.goto(link["url"])
    await page.get_by_role("link", name="Connect Sandbox Shop").click()
    await page.wait_for_url(f"{link['url']}/shop")
    # the field is the connector's setting, labelled with its description, masked
    key = page.get_by_label("Shop API key (the sandbox accepts shop_test_key_123)")
    await expect(key).to_have_attribute("type", "password")
    await expect(key).to_have_attribute("name", "api_key")
    await shot(page, "connect-06-shop-form")

    # a wrong key: said so on the page, nothing saved, the link still usable
    wrong = "not-the-shop-key-123"
    await key.fill(wrong)
    async with page.expect_navigation() as sent:
        await page.get_by_role("button", name="Connect").click()
    assert (await sent.value).status == 422
    error = page.locator("#connect-error")
    await expect(error).to_have_text(
        "Sandbox Shop refused these credentials: check them and try again.")
    await expect(error).to_have_attribute("data-wrong-credentials", "true")
    await expect(key).to_have_value("")  # a secret is never filled back in
    assert wrong not in await page.content()
    await shot(page, "connect-07-shop-wrong-key")
    assert await site.connections("u1") == []
    assert (await site.session(link["token"]))["status"] == "pending"

    # the right key
    await key.fill(site.canary)
    await page.get_by_role("button", name="Connect").click()
    await expect_done(page)
    await shot(page, "connect-08-shop-connected")
    assert (await site.session(link["token"]))["status"] == "connected"
    [conn] = await site.connections("u1")
    assert (conn["connector"], conn["is_default"], conn["secrets_set"]) == (
        "shop", True, ["api_key"])
    assert site.canary not in await site.stored_rows()

    # u1's model calls the shop's tool over MCP, through the connection just made
    u1, u2 = await site.end_user_token("u1"), await site.end_user_token("u2")
    async with mcp_session(site.url, u1) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        got = await client.call_tool("shop_get_order", {"order_id": "42"})
    assert "shop_get_order" in names
    assert got.is_error is False, text_of(got)
    assert got.structured_content is not None and got.structured_content["id"] == "42"
    [call] = await site.rest("GET", "/connections", token=u1)
    assert call["name"] == conn["name"]
    mine = await site.rest("GET", f"/me/connect-sessions/{link['token']}", token=u1)
    assert mine["status"] == "connected"

    # u2 sees none of it: the tool is offered, but answers with a link of u2's own
    async with mcp_session(site.url, u2) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool("shop_get_order", {"order_id": "42"})
    assert "shop_get_order" in names
    assert not any(conn["name"] in name for name in names)
    said = text_of(refused)
    assert refused.is_error is True and "not connected" in said, said
    assert site.at("/connect/") in said and link["token"] not in said
    assert conn["name"] not in said
    assert await site.rest("GET", "/connections", token=u2) == []
    await site.rest("GET", f"/connect-sessions/{link['token']}", token=u2, expect=404)
    await site.rest("GET", f"/me/connect-sessions/{link['token']}", token=u2, expect=404)
    await site.rest("GET", f"/connections/{conn['name']}", token=u2, expect=404)

    # u2 opens the link the tool gave, connects, and the same call then works
    u2_link = re.search(re.escape(site.at("/connect/")) + r"[A-Za-z0-9_-]{43}", said)
    assert u2_link is not None
    await page.goto(f"{u2_link.group(0)}/shop")
    await page.get_by_label("Shop API key (the sandbox accepts shop_test_key_123)").fill(
        site.canary)
    await page.get_by_role("button", name="Connect").click()
    await expect_done(page)
    async with mcp_session(site.url, u2) as client:
        again = await client.call_tool("shop_get_order", {"order_id": "42"})
    assert again.is_error is False, text_of(again)
    [theirs] = await site.rest("GET", "/connections", token=u2)
    assert theirs["name"] != conn["name"] and theirs["end_user"] == "u2"


async def test_the_connect_page_refuses_framing_and_a_form_posted_from_another_site(
        site: Site) -> None:
    from playwright.async_api import expect

    page = site.page
    link = await site.link("u3", ["shop"])
    form_url = f"{link['url']}/shop"
    shown = await page.goto(form_url)
    assert shown is not None and shown.status == 200
    headers = await shown.all_headers()
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]

    framing = (f"<!doctype html><title>Framing</title>"
               f"<iframe id='victim' src='{escape(form_url)}'></iframe>")
    # an attacker's page posting their own (valid) key into the victim's link
    posting = (f"<!doctype html><title>Win a prize</title><form method='post' "
               f"action='{escape(form_url)}'><input type='hidden' name='api_key' "
               f"value='{escape(site.canary)}'><button id='claim'>Claim</button></form>")
    async with other_site({"/frame": framing, "/post": posting}) as evil:
        # framed: Chromium shows its error page in the frame, not the form
        await page.goto(f"{evil}/frame")
        [frame] = page.main_frame.child_frames
        assert frame.url.startswith("chrome-error://"), frame.url
        await expect(page.frame_locator("#victim").locator("#connect-form")).to_have_count(0)
        await shot(page, "connect-09-framing-refused")

        await page.goto(f"{evil}/post")
        async with page.expect_navigation() as sent:
            await page.click("#claim")
        assert (await sent.value).status == 403
        await shot(page, "connect-10-cross-site-post-refused")
    assert await site.connections("u3") == []
    assert (await site.session(link["token"]))["status"] == "pending"

    # the same post from the link's own page goes through
    await page.goto(form_url)
    await page.get_by_label("Shop API key (the sandbox accepts shop_test_key_123)").fill(
        site.canary)
    await page.get_by_role("button", name="Connect").click()
    await expect_done(page)
    assert [c["connector"] for c in await site.connections("u3")] == ["shop"]
