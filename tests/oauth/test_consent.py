"""`Patchwire.authorize`: the authorization-code flow with a one-shot loopback listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import OAuthError
from patchwire.sandbox import Sandbox
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET, oauth_connector
from tests.support.settings import local_settings


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Patchwire, Sandbox]]:
    registry = ConnectorRegistry([oauth_connector()])
    async with Sandbox(seed=0) as sandbox:
        settings = local_settings(tmp_path / "home")
        async with Patchwire(settings, connectors=registry) as pw:
            await pw.add_connection("oauthy", "acme", {"sandbox_url": sandbox.url,
                                                       "client_id": CLIENT_ID,
                                                       "client_secret": CLIENT_SECRET})
            yield pw, sandbox


async def open_in_browser(url: str, *, forged_state_first: bool = False) -> int:
    """What a person's browser does: follow the authorize URL and its redirect."""
    async with aiohttp.ClientSession() as session:
        if forged_state_first:
            redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
            async with session.get(redirect_uri, params={"code": "stolen",
                                                         "state": "forged"}) as resp:
                assert resp.status == 400
        async with session.get(url) as resp:
            await resp.read()
            return resp.status


async def authorize(pw: Patchwire, **browser: bool) -> None:
    opened: list[asyncio.Task[int]] = []

    def on_url(url: str) -> None:
        assert urlsplit(url).path.endswith("/oauth/authorize")
        query = parse_qs(urlsplit(url).query)
        assert query["code_challenge_method"] == ["S256"] and query["state"]
        opened.append(asyncio.ensure_future(open_in_browser(url, **browser)))

    await pw.authorize("acme", on_url=on_url, consent_timeout=10)
    assert await opened[0] == 200


async def test_an_approved_authorization_stores_tokens_and_calls_use_them(env) -> None:
    pw, sandbox = env
    await authorize(pw)
    assert sandbox.state.oauth.stats.token_requests["authorization_code"] == 1
    assert await pw.call("oauthy.me", connection="acme")
    assert not await pw.needs_reauth("acme")


async def test_a_redirect_with_a_forged_state_is_ignored(env) -> None:
    pw, sandbox = env
    await authorize(pw, forged_state_first=True)
    assert sandbox.state.oauth.stats.token_requests["authorization_code"] == 1


async def test_a_denied_authorization_is_an_oauth_error(env) -> None:
    pw, sandbox = env
    sandbox.state.oauth.auto_approve = False

    opened: list[asyncio.Task[int]] = []

    def deny(url: str) -> None:
        opened.append(asyncio.ensure_future(open_in_browser(url + "&approve=0")))

    with pytest.raises(OAuthError, match="access_denied"):
        await pw.authorize("acme", on_url=deny, consent_timeout=10)


async def test_no_answer_within_the_timeout_is_an_oauth_error(env) -> None:
    pw, _ = env
    with pytest.raises(OAuthError, match="no authorization arrived"):
        await pw.authorize("acme", on_url=lambda url: None, consent_timeout=0.05)
