"""Connect sessions in the store (SQLite and PostgreSQL): single use, expiry on a fake
clock, the token's digest only, the long poll woken when the session completes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from patchwire import Patchwire
from patchwire.connect import ConnectSessions, check_return_url
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import (
    ConnectSessionClosed,
    UnknownConnection,
    UnknownConnector,
    UnknownConnectSession,
)
from tests.support.settings import local_settings

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def pw(store_url: str, tmp_path: Path) -> AsyncIterator[Patchwire]:
    settings = local_settings(tmp_path / "home", database_url=store_url,
                              public_url="https://pw.example.com/base/")
    async with Patchwire(settings, connectors=ConnectorRegistry.load(())) as opened:
        yield opened


async def test_a_link_is_pending_until_its_time_is_up_then_expired(pw: Patchwire) -> None:
    clock = Clock()
    sessions = ConnectSessions(pw.runtime, clock=clock)
    session, token = await sessions.create("u1", ["shop"])
    assert session.status == "pending"
    assert session.expires_at == START + timedelta(minutes=30)
    clock.now += timedelta(minutes=29, seconds=59)
    assert (await sessions.get(token)).status == "pending"
    clock.now += timedelta(seconds=1)
    assert (await sessions.get(token)).status == "expired"
    with pytest.raises(ConnectSessionClosed, match="expired"):
        await sessions.open_record(token)
    assert not await sessions.finish(await sessions.record(token), "shop-1")


async def test_a_link_is_single_use(pw: Patchwire) -> None:
    sessions = ConnectSessions(pw.runtime)
    _, token = await sessions.create("u1", ["shop"])
    rec = await sessions.open_record(token)
    assert await sessions.finish(rec, "shop-1")
    assert not await sessions.finish(rec, "shop-2")  # the second finisher loses
    found = await sessions.get(token)
    assert (found.status, found.connection) == ("connected", "shop-1")
    with pytest.raises(ConnectSessionClosed, match="already used"):
        await sessions.open_record(token)


async def test_only_the_digest_of_the_token_is_stored(pw: Patchwire) -> None:
    _, token = await ConnectSessions(pw.runtime).create("u1", ["shop"])
    async with pw.store.engine.connect() as conn:
        dump = str((await conn.execute(sa.text("SELECT * FROM connect_sessions"))).all())
    assert token not in dump
    with pytest.raises(UnknownConnectSession):
        await ConnectSessions(pw.runtime).get(token[:-1] + ("A" if token[-1] != "A" else "B"))


async def test_the_link_is_built_from_the_public_url(pw: Patchwire) -> None:
    link = await ConnectSessions(pw.runtime).link("u1", ["shop", "calendar"])
    assert link.url == f"https://pw.example.com/base/connect/{link.token}"
    assert len(link.token) == 43


async def test_a_reconnect_link_names_only_the_end_users_own_connection(
        pw: Patchwire) -> None:
    await pw.add_connection("shop", "u2-shop", {"api_key": "k"}, end_user="u2")
    sessions = ConnectSessions(pw.runtime)
    for end_user, name in (("u1", "u2-shop"), ("u1", "nope")):
        with pytest.raises(UnknownConnection):
            await sessions.create(end_user, [], connection=name)
    session, _ = await sessions.create("u2", [], connection="u2-shop")
    assert session.connectors == ("shop",)
    with pytest.raises(ValueError, match="offers that connector only"):
        await sessions.create("u2", ["calendar"], connection="u2-shop")


async def test_bad_requests_are_refused_with_what_is_wrong(pw: Patchwire) -> None:
    sessions = ConnectSessions(pw.runtime)
    with pytest.raises(UnknownConnector, match="nosuch"):
        await sessions.create("u1", ["shop", "nosuch"])
    for end_user, connectors in (("", ["shop"]), ("u1\n", ["shop"]), ("u1", [])):
        with pytest.raises(ValueError):
            await sessions.create(end_user, connectors)
    with pytest.raises(ValueError):
        await sessions.create("u1", ["shop"], ttl=timedelta(days=30))


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "data:text/html,<script>", "/relative", "//evil.example/x",
    "https://user:pw@evil.example/", "https://ok.example/\r\nSet-Cookie: x=1",
    "ftp://files.example/", "https://" + "a" * 2000 + ".example/", "http://[::1",
])
def test_a_return_url_must_be_an_absolute_http_url(url: str) -> None:
    with pytest.raises(ValueError, match="return_url"):
        check_return_url(url)


def test_an_absolute_http_return_url_is_kept_as_given() -> None:
    assert check_return_url("https://chat.example.com/c/1?x=2#y") == (
        "https://chat.example.com/c/1?x=2#y")


async def test_the_long_poll_returns_when_the_session_completes(pw: Patchwire) -> None:
    sessions = ConnectSessions(pw.runtime)
    _, token = await sessions.create("u1", ["shop"])
    waiting = asyncio.create_task(sessions.wait(token, 30))
    await asyncio.sleep(0)  # let the poll read the pending session and start waiting
    assert not waiting.done()
    await sessions.finish(await sessions.record(token), "shop-1")
    async with asyncio.timeout(5):  # woken, not the 30 s bound
        done = await waiting
    assert (done.status, done.connection) == ("connected", "shop-1")


async def test_the_long_poll_answers_pending_at_once_without_a_wait(pw: Patchwire) -> None:
    sessions = ConnectSessions(pw.runtime)
    _, token = await sessions.create("u1", ["shop"])
    async with asyncio.timeout(5):
        assert (await sessions.wait(token, 0)).status == "pending"


async def test_an_end_users_poll_sees_only_their_own_links(pw: Patchwire) -> None:
    sessions = ConnectSessions(pw.runtime)
    _, token = await sessions.create("u1", ["shop"])
    with pytest.raises(UnknownConnectSession):
        await sessions.wait(token, 0, end_user="u2")
    assert (await sessions.wait(token, 0, end_user="u1")).end_user == "u1"
