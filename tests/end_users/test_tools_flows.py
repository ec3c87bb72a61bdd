"""A flow offered as a tool, called by an end user, starts a run that acts for them: its
call steps go through their connections only, and its approvals are theirs."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from patchwire import Patchwire, ToolInvoker
from patchwire.connect import ConnectSessions
from patchwire.flows import FlowEngine
from patchwire.flows.spec import FlowSpec
from patchwire.sandbox import Sandbox
from tests.support.end_users import shop_connections
from tests.support.settings import local_settings

BOUND = 30.0  # no run here takes this long

MY_ORDER = FlowSpec.model_validate(yaml.safe_load(textwrap.dedent("""
    id: my_order
    trigger: {tool: {name: look_up_my_order}}
    input:
      type: object
      properties: {order_id: {type: string}}
      required: [order_id]
    steps:
      - id: order
        call: shop.get_order
        args: {order_id: "$input.order_id"}
    output: "$steps.order.id"
""")))


@pytest.fixture
async def pw(store_url: str, tmp_path: Path, sandbox: Sandbox,
             canary: str) -> AsyncIterator[Patchwire]:
    settings = local_settings(tmp_path / "home", database_url=store_url)
    await shop_connections(settings, sandbox, canary)
    async with Patchwire(settings) as opened:
        yield opened


async def test_a_flow_tool_called_by_an_end_user_runs_for_them(pw: Patchwire) -> None:
    async with FlowEngine(pw, {"my_order": MY_ORDER}, poll_interval=3600) as engine:
        invoker = ToolInvoker(pw, engine=engine, flow_wait=BOUND,
                              links=ConnectSessions(pw.runtime))
        u2 = invoker.for_end_user("u2")
        assert (await u2.catalog()).get("look_up_my_order").kind == "flow"
        result = await u2.invoke("look_up_my_order", {"order_id": "1"})
        assert result.status == "ok", result
        # u3 has no shop: their run cannot borrow anyone's, and they are asked to connect
        nobody = await invoker.for_end_user("u3").invoke("look_up_my_order",
                                                          {"order_id": "1"})
        assert nobody.status == "connection_required", nobody
        assert nobody.data["connector"] == "shop"
        assert ("I need access to your Sandbox Shop account. Open this link to connect it: "
                + nobody.data["connect_url"]) in nobody.text
        runs = await engine.list_runs()
    assert sorted((r.end_user or "", r.status) for r in runs) == [
        ("u2", "succeeded"), ("u3", "failed")]
    await pw.flush()
    assert [c.connection for c in await pw.recent_calls(action="shop.get_order")] == [
        "u2-shop"]
    audit = await invoker.tool_calls()
    assert sorted(c.end_user or "" for c in audit) == ["u2", "u3"]


async def test_a_flow_tool_works_once_the_end_user_has_connected(
        pw: Patchwire, sandbox: Sandbox, canary: str) -> None:
    async with FlowEngine(pw, {"my_order": MY_ORDER}, poll_interval=3600) as engine:
        u3 = ToolInvoker(pw, engine=engine, flow_wait=BOUND).for_end_user("u3")
        first = await u3.invoke("look_up_my_order", {"order_id": "1"})
        assert first.status == "connection_required"
        # connected in another process: neither the call path nor the catalog may still
        # believe u3 has no shop
        async with Patchwire(pw.settings) as other:
            await other.add_connection("shop", "u3-shop", {
                "sandbox_url": sandbox.url, "api_key": canary}, end_user="u3")
        again = await u3.invoke("look_up_my_order", {"order_id": "1"})
    assert again.status == "ok", again
