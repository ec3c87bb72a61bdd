"""A connect link for a connector that logs in for a token (``type: token_exchange``): the
person's credentials are proved by logging in and making the connector's test call before
anything is saved, and a refused login is shown as refused credentials."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.connect import Site
from tests.support.leaks import leaks_in, new_canary
from tests.support.servers import serve, serving
from tests.support.settings import free_port, local_settings
from tests.support.token_servers import ExchangeState

CONNECTOR = """
name: sessions
title: Sessions API
base_url: "{api_url}"
settings:
  api_url: {default: "%s"}
  api_key: {secret: true}
  api_secret: {secret: true}
auth:
  type: token_exchange
  request:
    method: POST
    url: /auth/login
    body: {key: "{api_key}", secret: "{api_secret}"}
  response: {token: data.session, expires_in: data.ttl}
  headers: {X-Session: "{token}"}
retry: {attempts: 1}
test: {action: me}
actions:
  me:
    request: {method: GET, path: /api/me}
"""


@pytest.fixture
def state() -> ExchangeState:
    return ExchangeState(key="key-" + new_canary(), secret=new_canary("secret"))


@pytest.fixture
async def site(store_url: str, tmp_path: Path, sandbox: Sandbox, canary: str,
               state: ExchangeState) -> AsyncIterator[Site]:
    async with serve(state.app()) as upstream:
        port = free_port()
        settings = local_settings(tmp_path / "home", database_url=store_url,
                                  public_url=f"http://127.0.0.1:{port}")
        spec = load_connector_text(CONNECTOR % upstream, "sessions.yaml")
        pw = Patchwire(settings, connectors=ConnectorRegistry([spec]))
        async with (
            serving(create_app(pw), port) as url,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        ):
            yield Site(url, pw, http, sandbox, canary, store_url)


async def test_credentials_that_log_in_are_proved_saved_and_serve_the_end_users_calls(
        site: Site, state: ExchangeState, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    link = await site.link(end_user="u9", connectors=("sessions",))
    status, html, _ = await site.post_form(
        f"{link['url']}/sessions", {"api_key": state.key, "api_secret": state.secret})
    assert status == 200, html
    assert "Connected — you can return to the chat" in html
    assert state.logins == 1 and state.me == {200: 1}  # the proof logged in and called
    [conn] = await site.pw.list_connections(end_user="u9")
    assert conn.connector == "sessions" and conn.is_default
    assert await site.pw.call("sessions.me", {}, end_user="u9") == {
        "user": "acme", "session_number": "1"}  # a token of its own, once saved
    # its kept token's state is shown like an OAuth2 connection's, never the token
    async with site.http.get(site.at(f"/api/v1/connections/{conn.name}")) as resp:
        shown = await resp.json()
    assert shown["token"]["valid"] is True and shown["token"]["needs_reauth"] is False
    assert "session-1" not in str(shown)
    assert leaks_in(html + caplog.text, state.secret) == []


async def test_a_refused_login_is_shown_as_refused_credentials_and_nothing_is_saved(
        site: Site, state: ExchangeState, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    link = await site.link(end_user="u9", connectors=("sessions",))
    wrong = "wrong-" + state.secret
    status, html, _ = await site.post_form(
        f"{link['url']}/sessions", {"api_key": state.key, "api_secret": wrong})
    assert status == 422, html
    assert 'data-wrong-credentials="true"' in html and "refused these credentials" in html
    assert await site.pw.list_connections(end_user="u9") == []
    # the login endpoint echoed what it was sent: none of it reaches the page or the logs
    assert leaks_in(html + caplog.text, wrong) == []
