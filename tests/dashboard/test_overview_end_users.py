"""The overview with end users' connections, over HTTP against the real app (uvicorn on
loopback, the sandbox as the upstream), on SQLite and PostgreSQL: the operator's connections
stay a row each, the end users' are summed up in one row per connector (how many, of how
many end users, their calls) linking to the Connections page, and removed connections are
named one by one only up to a bound."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.dashboard import _overview
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from patchwire.server import create_app
from tests.support.dashboard import WAIT_S, Dash, text_of
from tests.support.servers import serving
from tests.support.settings import local_settings

#: the end users' connections, none of whose names the overview may show
END_USERS_CONNECTIONS = ("u1-shop", "u2-shop", "u2-desk")


@pytest.fixture
async def board(store_url: str, tmp_path: Path, sandbox: Sandbox,
                canary: str) -> AsyncIterator[Dash]:
    """``acme``: the operator's shop; ``u1-shop`` (end user u1), ``u2-shop`` (end user u2,
    a wrong key) and ``u2-desk`` (end user u2's helpdesk); ``old-1`` and ``old-2``: shop
    connections of end user u3, to be removed."""
    settings = local_settings(tmp_path / "home", database_url=store_url)
    good = {"sandbox_url": sandbox.url, "api_key": canary}
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme", good)
        await setup.add_connection("shop", "u1-shop", good, end_user="u1")
        await setup.add_connection("shop", "u2-shop", {**good, "api_key": "wrong"},
                                   end_user="u2")
        await setup.add_connection("helpdesk", "u2-desk", {
            "sandbox_url": sandbox.url, **SANDBOX_CREDENTIALS["helpdesk"]}, end_user="u2")
        for name in ("old-1", "old-2"):
            await setup.add_connection("shop", name, good, end_user="u3")
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as http,
    ):
        yield Dash(url, http, sandbox, canary, settings)


async def call(dash: Dash, connection: str, order_id: str = "42") -> None:
    async with dash.http.post(dash.at("/api/v1/actions/shop.get_order/call"),
                              json={"connection": connection,
                                    "input": {"order_id": order_id}}) as resp:
        await resp.read()
        assert resp.status < 500, resp.status


def row(html: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr {attribute}="{re.escape(value)}".*?</tr>', html, re.S)
    assert found, f"no row with {attribute}={value}"
    return found[0]


async def test_the_overview_names_the_operators_connections_and_sums_up_the_end_users_per_connector(
        board: Dash) -> None:
    await call(board, "acme")
    for order in ("42", "42", "404404"):  # the last: an unknown order (the caller's)
        await call(board, "u1-shop", order)
    await call(board, "u2-shop")  # its key is refused

    for html in (await board.page("/"), await board.partial("/")):
        # one row per operator connection, as always (u3's connections have no calls)
        assert re.findall(r'<tr data-connection="([^"]*)"', html) == ["acme"]
        assert re.search(r"shop acme 1 100\.0% ", text_of(row(html, "data-connection",
                                                                "acme")))
        # one row per connector for all the end users' connections, in connector order
        assert re.findall(r'<tr data-end-users="([^"]*)"', html) == ["helpdesk", "shop"]
        shop = row(html, "data-end-users", "shop")
        assert re.search(r"shop end users' connections \(4 connections of 3 end users\) "
                         r"4 50\.0% failed: auth 1 · client 1 · upstream 0 · transport 0 "
                         r"\d+(\.\d)? ms \d+(\.\d)? ms 0\.00 none closed",
                         text_of(shop)), text_of(shop)
        assert 'href="/connections?connector=shop"' in shop
        desk = row(html, "data-end-users", "helpdesk")
        assert re.search(r"helpdesk end users' connections \(1 connection of 1 end user\) "
                         r"0 — ", text_of(desk)), text_of(desk)
        assert 'href="/connections?connector=helpdesk"' in desk
        for name in (*END_USERS_CONNECTIONS, "old-1", "old-2"):
            assert name not in html  # nor are they read one by one
    assert '<option value="helpdesk"' in await board.page("/")  # its charts can be chosen


async def test_removed_connections_are_named_one_by_one_only_up_to_a_bound(
        board: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_overview, "REMOVED_SHOWN", 1)  # read per request
    await call(board, "old-1")
    await call(board, "old-2", "404404")
    await call(board, "old-2")
    async with Patchwire(board.settings) as pw:
        for name in ("old-1", "old-2"):
            await pw.remove_connection(name)

    html = await board.page("/")
    # the one called last by name, as before; the others summed up per connector
    assert re.findall(r'<tr data-connection="([^"]*)"', html) == ["acme", "old-2"]
    assert re.search(r"shop old-2 2 50\.0% failed: auth 0 · client 1 ",
                     text_of(row(html, "data-connection", "old-2")))
    rest = text_of(row(html, "data-removed", "shop"))
    assert re.search(r"shop 1 other removed connection \(their calls summed up\) 1 "
                     r"100\.0% — — ", rest), rest
    assert "old-1" not in html
    # removed, they are no longer the end user's: the summary counts what remains
    assert "(2 connections of 2 end users)" in text_of(row(html, "data-end-users", "shop"))

    monkeypatch.setattr(_overview, "REMOVED_SHOWN", 20)
    named = await board.page("/")
    assert re.findall(r'<tr data-connection="([^"]*)"', named) == ["acme", "old-1", "old-2"]
    assert 'data-removed="' not in named
