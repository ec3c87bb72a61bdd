"""A connection its end user must authorise again answers with a reconnect link: whether
the store says so (``needs_reauth``) or the provider refuses to renew its tokens now."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from patchwire import Patchwire, ToolInvoker
from patchwire.auth import TokenSet, connection_aad
from patchwire.connect import ConnectSessions
from patchwire.connectors import ConnectorRegistry
from patchwire.sandbox import Sandbox
from patchwire.store import ConnectionRecord
from tests.support.clocks import FakeClock
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET, oauth_connector
from tests.support.settings import local_settings


async def test_a_connection_marked_needs_reauth_answers_with_a_reconnect_link(
        store_url: str, tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    clock = FakeClock()
    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with Patchwire(settings) as pw:
        links = ConnectSessions(pw.runtime)
        await pw.add_connection("shop", "u1-shop", {"sandbox_url": sandbox.url,
                                                     "api_key": canary}, end_user="u1")
        invoker = ToolInvoker(pw, links=links, clock=clock).for_end_user("u1")
        order = {"order_id": "1"}
        assert (await invoker.invoke("shop_get_order", order)).status == "ok"
        async with Patchwire(settings) as other:  # marked by another process
            await other.store.set_connection_state("u1-shop", needs_reauth=True)
        clock.advance(10)  # past the catalog's cache time
        result = await invoker.invoke("shop_get_order", order)
        assert result.status == "connection_required", result
        assert result.data["reason"] == "needs_reauth"
        assert result.data["connection"] == "u1-shop"
        assert ("To do this I need access to your Sandbox Shop account again. Open this "
                f"link to reconnect it: {result.data['connect_url']}") in result.text
        session = await links.get(result.data["connect_url"].rsplit("/", 1)[1])
        assert (session.end_user, session.connectors, session.connection) == (
            "u1", ("shop",), "u1-shop")
        await pw.flush()
        assert len(await pw.recent_calls()) == 1  # the upstream was not called again
        async with Patchwire(settings) as other:  # reconnected
            await other.store.set_connection_state("u1-shop", needs_reauth=False)
        # no waiting for the cache: a "reconnect" read from it is checked again first
        assert (await invoker.invoke("shop_get_order", order)).status == "ok"


async def test_a_refused_token_renewal_answers_with_a_reconnect_link(
        tmp_path: Path) -> None:
    registry = ConnectorRegistry([oauth_connector()])
    async with (Sandbox(seed=0) as sandbox,
                Patchwire(local_settings(tmp_path / "home"), connectors=registry) as pw):
        links = ConnectSessions(pw.runtime)
        rec = ConnectionRecord.new("u1-oauthy", "oauthy", end_user="u1", settings={
            "sandbox_url": sandbox.url, "client_id": CLIENT_ID})
        expired = TokenSet("at-old-secret", "rt-unknown-secret", expires_at=1.0)
        values = expired.merged_into({"client_secret": CLIENT_SECRET})
        await pw.store.add_connection(dataclasses.replace(
            rec, secrets=pw.vault.encrypt_json(values, aad=connection_aad(rec.id))))
        await ToolInvoker(pw).repository.set_tool_settings("oauthy.me", {"enabled": True})
        invoker = ToolInvoker(pw, links=links).for_end_user("u1")
        result = await invoker.invoke("oauthy_me", {})
        assert result.status == "connection_required", result
        assert result.data["reason"] == "needs_reauth"
        assert result.data["connection"] == "u1-oauthy"
        session = await links.get(result.data["connect_url"].rsplit("/", 1)[1])
        assert (session.end_user, session.connectors, session.connection) == (
            "u1", ("oauthy",), "u1-oauthy")
        assert "secret" not in result.text
