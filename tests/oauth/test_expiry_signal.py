"""Expiry signals other than 401: ``refresh_on_status`` / ``refresh_on_body`` of an OAuth2
connector make the call path renew the token once and retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.connectors._loader import load_connector_text
from patchwire.errors import AuthError, SpecError
from patchwire.sandbox import Sandbox
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET
from tests.support.servers import serve
from tests.support.settings import local_settings


class Upstream:
    """An API that answers 403 ``{"error": {"code": ...}}`` for tokens it no longer takes."""

    def __init__(self) -> None:
        self.refused: dict[str, str] = {}  # access token -> error code it gets
        self.seen: list[str] = []
        self.url = ""

    async def me(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append(token)
        if token in self.refused:
            return web.json_response({"error": {"code": self.refused[token]}}, status=403)
        return web.json_response({"id": "u1"})


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    api = Upstream()
    app = web.Application()
    app.router.add_get("/api/me", api.me)
    async with serve(app) as url:
        api.url = url
        yield api


def signalling_connector(**auth: Any) -> ConnectorSpec:
    return ConnectorSpec.model_validate({
        "name": "signals",
        "base_url": "{api_url}/api",
        "settings": {"api_url": {}, "sandbox_url": {}, "client_id": {},
                     "client_secret": {"secret": True}},
        "auth": {"type": "oauth2", "flow": "client_credentials",
                 "token_url": "{sandbox_url}/oauth/token", **auth},
        "retry": {"attempts": 1},
        "actions": {"me": {"request": {"method": "GET", "path": "/me"}}},
    })


async def open_with(
    tmp_path: Path, upstream: Upstream, sandbox: Sandbox, spec: ConnectorSpec
) -> Patchwire:
    pw = await Patchwire(local_settings(tmp_path / "home"),
                         connectors=ConnectorRegistry([spec])).open()
    await pw.add_connection("signals", "acme", {
        "api_url": upstream.url, "sandbox_url": sandbox.url, "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET})
    return pw


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(seed=0) as running:
        yield running


async def test_a_403_whose_body_says_token_expired_renews_the_token_once_and_succeeds(
    tmp_path: Path, upstream: Upstream, sandbox: Sandbox,
) -> None:
    spec = signalling_connector(refresh_on_body="error.code = 'token_expired'")
    pw = await open_with(tmp_path, upstream, sandbox, spec)
    try:
        assert await pw.call("signals.me", connection="acme") == {"id": "u1"}
        upstream.refused[upstream.seen[-1]] = "token_expired"
        assert await pw.call("signals.me", connection="acme") == {"id": "u1"}
        assert sandbox.state.oauth.stats.token_requests["client_credentials"] == 2
        assert len(set(upstream.seen)) == 2  # the retry carried the new token
        calls = await pw.recent_calls()
        assert [c.http_status for c in calls if c.status == "error"] == [403]
    finally:
        await pw.close()


async def test_a_403_with_another_error_code_is_raised_without_a_refresh(
    tmp_path: Path, upstream: Upstream, sandbox: Sandbox,
) -> None:
    spec = signalling_connector(refresh_on_body="error.code = 'token_expired'")
    pw = await open_with(tmp_path, upstream, sandbox, spec)
    try:
        await pw.call("signals.me", connection="acme")
        upstream.refused[upstream.seen[-1]] = "insufficient_scope"
        with pytest.raises(AuthError) as info:
            await pw.call("signals.me", connection="acme")
        assert info.value.status == 403 and not info.value.token_expired
        assert sandbox.state.oauth.stats.token_requests["client_credentials"] == 1
    finally:
        await pw.close()


async def test_a_status_listed_in_refresh_on_status_renews_whatever_the_body(
    tmp_path: Path, upstream: Upstream, sandbox: Sandbox,
) -> None:
    pw = await open_with(tmp_path, upstream, sandbox,
                         signalling_connector(refresh_on_status=[401, 403]))
    try:
        await pw.call("signals.me", connection="acme")
        upstream.refused[upstream.seen[-1]] = "anything"
        assert await pw.call("signals.me", connection="acme") == {"id": "u1"}
        assert sandbox.state.oauth.stats.token_requests["client_credentials"] == 2
    finally:
        await pw.close()


async def test_without_a_configured_signal_a_403_token_expired_is_not_retried(
    tmp_path: Path, upstream: Upstream, sandbox: Sandbox,
) -> None:
    pw = await open_with(tmp_path, upstream, sandbox, signalling_connector())
    try:
        await pw.call("signals.me", connection="acme")
        upstream.refused[upstream.seen[-1]] = "token_expired"
        with pytest.raises(AuthError):
            await pw.call("signals.me", connection="acme")
        assert sandbox.state.oauth.stats.token_requests["client_credentials"] == 1
    finally:
        await pw.close()


def test_a_refresh_on_body_that_is_not_valid_jsonata_is_a_load_error() -> None:
    text = """
name: signals
base_url: https://api.example.com
settings: {client_id: {}, client_secret: {secret: true}}
auth:
  type: oauth2
  flow: client_credentials
  token_url: https://api.example.com/oauth/token
  refresh_on_body: "error.code = ("
"""
    with pytest.raises(SpecError) as info:
        load_connector_text(text, "signals.yaml")
    assert any("refresh_on_body" in str(p) for p in info.value.problems)


def test_refresh_on_status_defaults_to_401_and_refuses_non_error_statuses() -> None:
    assert signalling_connector().auth.refresh_on_status == [401]  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        signalling_connector(refresh_on_status=[200])
