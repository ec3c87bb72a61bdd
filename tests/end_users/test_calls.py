"""A call made for an end user goes through one of that end user's connections only: their
default one when none is named, never another end user's (which does not exist for them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchwire import NotConnected, Patchwire, UnknownConnection
from patchwire.sandbox import Sandbox
from tests.support.settings import local_settings


async def test_a_call_for_an_end_user_uses_only_their_connections(
        store_url: str, tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    settings = local_settings(tmp_path / "home", database_url=store_url)
    values = {"sandbox_url": sandbox.url, "api_key": canary}
    async with Patchwire(settings) as pw:
        await pw.add_connection("shop", "u1-shop", values, end_user="u1")
        await pw.add_connection("shop", "u2-shop", {**values, "api_key": "wrong"},
                                end_user="u2")
        orders = await pw.call("shop.list_orders", end_user="u1")
        assert isinstance(orders, list | dict)
        calls = await pw.recent_calls()
        assert [c.connection for c in calls] == ["u1-shop"]
        # another end user's connection, named outright, does not exist for u1
        with pytest.raises(UnknownConnection, match="no connection named 'u2-shop'") as info:
            await pw.call("shop.list_orders", connection="u2-shop", end_user="u1")
        assert not isinstance(info.value, NotConnected)
        # an end user with no shop account is told so, with the connector to connect
        with pytest.raises(NotConnected) as missing:
            await pw.call("shop.list_orders", end_user="u3")
        assert missing.value.connector == "shop" and missing.value.end_user == "u3"
        assert "u1" not in str(missing.value) and "u2" not in str(missing.value)
        assert len(await pw.recent_calls()) == 1  # nothing else reached the upstream


async def test_of_several_connections_the_end_users_default_one_is_used(
        store_url: str, tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    settings = local_settings(tmp_path / "home", database_url=store_url)
    values = {"sandbox_url": sandbox.url, "api_key": canary}
    async with Patchwire(settings) as pw:
        await pw.add_connection("shop", "u1-work", values, end_user="u1", label="work")
        await pw.add_connection("shop", "u1-home", values, end_user="u1", label="home")
        with pytest.raises(UnknownConnection, match="work") as several:
            await pw.call("shop.list_orders", end_user="u1")
        assert "none is the default" in str(several.value)
        await pw.set_default_connection("u1-home")
        await pw.call("shop.list_orders", end_user="u1")
        assert [c.connection for c in await pw.recent_calls()] == ["u1-home"]
