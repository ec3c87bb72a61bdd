"""An end user's tool catalog: every connector's tools under names made of the connector
and action only (nothing of anyone else's), bound to that end user's own connections, built
with one indexed query, and kept for a bounded number of end users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from patchwire import Patchwire, ToolInvoker
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from tests.support.settings import local_settings


@pytest.fixture
async def pw(store_url: str, tmp_path: Path, sandbox: Sandbox,
             canary: str) -> AsyncIterator[Patchwire]:
    """The operator's ``acme``; u1's ``u1-shop``; u2's ``u2-work`` (default) and
    ``u2-home`` (label home), and u2's helpdesk ``u2-desk``."""
    shop = {"sandbox_url": sandbox.url, "api_key": canary}
    async with Patchwire(local_settings(tmp_path / "home", database_url=store_url)) as opened:
        await opened.add_connection("shop", "acme", shop)
        await opened.add_connection("shop", "u1-shop", shop, end_user="u1")
        await opened.add_connection("shop", "u2-work", shop, end_user="u2", label="work")
        await opened.add_connection("shop", "u2-home", shop, end_user="u2", label="home")
        await opened.set_default_connection("u2-work")
        await opened.add_connection("helpdesk", "u2-desk", {
            "sandbox_url": sandbox.url, **SANDBOX_CREDENTIALS["helpdesk"]}, end_user="u2")
        yield opened


def tools_of(catalog: Any) -> dict[str, str | None]:
    return {t.name: t.connection for t in catalog}


async def test_an_end_user_sees_every_connectors_tools_bound_to_their_own_connections(
        pw: Patchwire) -> None:
    invoker = ToolInvoker(pw)
    u1 = tools_of(await invoker.for_end_user("u1").catalog())
    assert u1["shop_get_order"] == "u1-shop"
    # connectors they hold no connection of are listed too, unbound (the call asks to
    # connect): the helpdesk and calendar tools
    assert any(n.startswith("helpdesk_") for n in u1)
    assert all(c is None for n, c in u1.items() if n.startswith(("helpdesk_", "calendar_")))
    # nothing names another end user's connection, label or id, nor the operator's
    listed = " ".join(f"{n} {c}" for n, c in u1.items())
    for other in ("u2", "work", "home", "acme"):
        assert other not in listed
    assert {c for c in u1.values()} <= {"u1-shop", None}


async def test_the_default_connection_keeps_the_plain_names_and_others_get_their_label(
        pw: Patchwire) -> None:
    u2 = tools_of(await ToolInvoker(pw).for_end_user("u2").catalog())
    assert u2["shop_get_order"] == "u2-work"
    assert u2["home_shop_get_order"] == "u2-home"
    assert "work_shop_get_order" not in u2  # the default one is the plain name
    assert next(c for n, c in u2.items() if n.startswith("helpdesk_")) == "u2-desk"


async def test_an_operators_catalog_offers_the_operators_connections_only(
        pw: Patchwire) -> None:
    operator = tools_of(await ToolInvoker(pw).catalog())
    assert {c for n, c in operator.items() if n.startswith("shop_")} == {"acme"}
    assert not any("u1" in n or "u2" in n or "home" in n for n in operator)


async def test_an_end_users_catalog_is_built_with_one_query_on_their_connections(
        pw: Patchwire) -> None:
    invoker = ToolInvoker(pw)
    await invoker.for_end_user("u1").catalog()  # the shared definitions are read once
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.strip().upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            statements.append(statement)

    engine = pw.store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        await invoker.for_end_user("u2").catalog()
        await invoker.for_end_user("u1").catalog(refresh=True)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) == 2, statements
    assert all("FROM connections" in s and "WHERE connections.end_user =" in s
               for s in statements), statements


async def test_only_the_most_recently_active_end_users_invokers_are_kept(
        pw: Patchwire) -> None:
    invoker = ToolInvoker(pw, max_end_users=3)
    first = invoker.for_end_user("u1")
    assert invoker.for_end_user("u1") is first
    for n in range(10):
        invoker.for_end_user(f"user-{n}")
    assert len(invoker._scoped) == 3
    assert invoker.for_end_user("u1") is not first  # dropped, made anew: same tools
    assert tools_of(await invoker.for_end_user("u1").catalog()) == tools_of(
        await first.catalog())


async def test_an_invalid_end_user_id_is_refused(pw: Patchwire) -> None:
    invoker = ToolInvoker(pw)
    for bad in ("", " u1", "u\x001", "x" * 201):
        with pytest.raises(ValueError, match="end user"):
            invoker.for_end_user(bad)
    with pytest.raises(ValueError, match="another end user"):
        invoker.for_end_user("u1").for_end_user("u2")


async def test_no_tool_takes_a_connection_or_an_end_user_as_an_argument(
        pw: Patchwire) -> None:
    for tool in await ToolInvoker(pw).for_end_user("u1").catalog():
        properties = tool.input_schema.get("properties") or {}
        assert not {"connection", "end_user", "connection_name"} & set(properties), tool.name
