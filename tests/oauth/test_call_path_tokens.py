"""OAuth2 connections through the one call path: tokens fetched, reused and renewed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry
from patchwire.sandbox import Sandbox
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET, oauth_connector
from tests.support.settings import local_settings


@pytest.fixture
async def robot(tmp_path: Path) -> AsyncIterator[tuple[Patchwire, Sandbox]]:
    registry = ConnectorRegistry([oauth_connector("client_credentials", "robot")])
    async with Sandbox(seed=0) as sandbox:
        settings = local_settings(tmp_path / "home")
        async with Patchwire(settings, connectors=registry) as pw:
            await pw.add_connection("robot", "acme", {"sandbox_url": sandbox.url,
                                                      "client_id": CLIENT_ID,
                                                      "client_secret": CLIENT_SECRET})
            yield pw, sandbox


async def test_a_client_credentials_connection_gets_a_token_on_first_use_and_reuses_it(
    robot: tuple[Patchwire, Sandbox],
) -> None:
    pw, sandbox = robot
    first = await pw.call("robot.me", connection="acme")
    second = await pw.call("robot.me", connection="acme")
    assert first == second
    stats = sandbox.state.oauth.stats
    assert stats.token_requests["client_credentials"] == 1
    assert stats.userinfo[200] == 2


async def test_a_refused_token_is_renewed_once_for_all_callers_and_the_call_succeeds(
    robot: tuple[Patchwire, Sandbox],
) -> None:
    pw, sandbox = robot
    await pw.call("robot.me", connection="acme")
    sandbox.state.oauth.expire_access_tokens()  # revoked early: the client still trusts it
    results = await asyncio.gather(*(pw.call("robot.me", connection="acme")
                                     for _ in range(50)))
    assert len(results) == 50
    stats = sandbox.state.oauth.stats
    assert stats.token_requests["client_credentials"] == 2  # the first token and one renewal
    assert stats.userinfo[401] >= 1
    calls = await pw.recent_calls(limit=200)
    assert {c.status for c in calls} == {"ok", "error"}
    assert all(c.http_status == 401 for c in calls if c.status == "error")


async def test_token_values_never_reach_call_records(robot: tuple[Patchwire, Sandbox]) -> None:
    pw, sandbox = robot
    await pw.call("robot.me", connection="acme")
    sandbox.state.oauth.expire_access_tokens()
    await pw.call("robot.me", connection="acme")
    records = " ".join(str(r.to_dict()) for r in await pw.recent_calls())
    for token in list(sandbox.state.oauth._access):
        assert token not in records
    assert CLIENT_SECRET not in records
