"""The tools routes with end-user tokens: an end user lists and calls their own tools only,
sees their own tool calls and approvals only (another's answers 404), cannot steer a call to
another connection through its arguments, and is handed a connect link for an account they
have not connected — after which the same call works."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from patchwire import Patchwire, ToolInvoker
from patchwire.sandbox import Sandbox
from patchwire.store.keys import KeyRepository
from tests.support.api import PROBLEM_BASE, problem_of
from tests.support.end_users import Served, bearer, served

GATED = "shop_update_order_status"


@pytest.fixture
async def api(store_url: str, tmp_path: Path, sandbox: Sandbox,
              canary: str) -> AsyncIterator[Served]:
    async with served(store_url, tmp_path / "home", sandbox, canary,
                      end_users=("u1", "u2", "u3")) as running:
        yield running


def pending_order(api: Served) -> str:
    orders = api.sandbox.state.apis["shop"].orders  # type: ignore[attr-defined]
    return next(o for o, row in orders.items() if row["status"] == "pending")


async def get(api: Served, path: str, token: str | None = None,
              **params: Any) -> tuple[int, Any]:
    async with api.http.get(api.at(path), params=params or None,
                            headers=bearer(token) if token else None) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_an_end_user_lists_and_calls_only_their_own_tools(api: Served) -> None:
    u1 = api.tokens["u1"]
    status, tools = await get(api, "/api/v1/tools", u1)
    assert status == 200
    by_name = {t["name"]: t for t in tools}
    assert by_name["shop_get_order"]["connection"] == "u1-shop"
    shown = json.dumps(tools)
    assert "u2" not in shown and "acme" not in shown
    order = pending_order(api)
    result = await api.call("shop_get_order", {"order_id": order}, u1)
    assert result["status"] == "ok" and result["data"]["id"] == order
    await api.pw.flush()
    assert [c.connection for c in await api.pw.recent_calls()] == ["u1-shop"]
    # the audit: theirs alone, with the end user recorded
    status, mine = await get(api, "/api/v1/tool-calls", u1)
    assert [(c["tool"], c["connection"], c["end_user"]) for c in mine] == [
        ("shop_get_order", "u1-shop", "u1")]
    status, theirs = await get(api, "/api/v1/tool-calls", api.tokens["u2"])
    assert status == 200 and theirs == []
    status, everyone = await get(api, "/api/v1/tool-calls")
    assert [c["end_user"] for c in everyone] == ["u1"]


async def test_another_end_users_connection_does_not_exist_for_them(api: Served) -> None:
    u2 = api.tokens["u2"]
    async with api.http.get(api.at("/api/v1/tools"), params={"connection": "u1-shop"},
                            headers=bearer(u2)) as resp:
        body = await problem_of(resp, 404)
    assert "u1-shop" in body["detail"] and "u2-shop" not in body["detail"]
    status, own = await get(api, "/api/v1/tools", u2, connection="u2-shop")
    assert status == 200 and {t["connection"] for t in own} == {"u2-shop"}


async def test_arguments_naming_another_connection_or_end_user_are_refused(
        api: Served) -> None:
    u2 = api.tokens["u2"]
    status, tools = await get(api, "/api/v1/tools", u2)
    assert status == 200
    for tool in tools:
        assert not {"connection", "end_user"} & set(tool["input_schema"].get("properties", {}))
    order = pending_order(api)
    for injected in ({"connection": "u1-shop"}, {"end_user": "u1"}):
        result = await api.call("shop_get_order", {"order_id": order, **injected}, u2)
        assert result["status"] == "invalid_arguments", result
        assert next(iter(injected)) in result["text"]
    await api.pw.flush()
    assert await api.pw.recent_calls() == []  # nothing reached any shop


async def test_an_end_users_approvals_are_theirs_alone(api: Served) -> None:
    u1, u2 = api.tokens["u1"], api.tokens["u2"]
    order = pending_order(api)
    args = {"order_id": order, "status": "cancelled"}
    asked = await api.call(GATED, args, u1)
    assert asked["status"] == "pending_approval"
    approval = asked["approval_id"]
    # another end user: not in their list, and the id does not exist for them
    assert (await get(api, "/api/v1/approvals", u2))[1] == []
    async with api.http.get(api.at(f"/api/v1/approvals/{approval}"),
                            headers=bearer(u2)) as resp:
        missing = await problem_of(resp, 404)
    assert missing["type"] == PROBLEM_BASE + "unknown_approval"
    for verdict in ("approve", "deny"):
        async with api.http.post(api.at(f"/api/v1/approvals/{approval}/{verdict}"),
                                 json={}, headers=bearer(u2)) as resp:
            await problem_of(resp, 404)
    # the same call by u2 goes through u2's connection and needs its own approval
    other = await api.call(GATED, args, u2)
    assert other["status"] == "pending_approval" and other["approval_id"] != approval
    # u1 sees it, the operator sees both; u1's decision is recorded under u1's identity
    assert [a["id"] for a in (await get(api, "/api/v1/approvals", u1))[1]] == [approval]
    assert {a["end_user"] for a in (await get(api, "/api/v1/approvals"))[1]} == {"u1", "u2"}
    async with api.http.post(api.at(f"/api/v1/approvals/{approval}/approve"),
                             json={"by": "someone else"}, headers=bearer(u1)) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["decided_by"] == "end_user:u1"
    done = await api.call(GATED, args, u1)
    assert done["status"] == "ok", done
    still = await api.call(GATED, args, u2)  # u1's yes did not let u2's call through
    assert still["status"] == "pending_approval"


async def test_an_operators_decision_is_recorded_under_their_key(api: Served) -> None:
    asked = await api.call(GATED, {"order_id": pending_order(api), "status": "cancelled"},
                           api.tokens["u1"])
    async with await api.pw.store.__class__.open(api.settings.database_url) as store:
        record, key = await KeyRepository(store).create("ana's key", ["approve"])
    async with api.http.post(api.at(f"/api/v1/approvals/{asked['approval_id']}/deny"),
                             json={"by": "ana", "reason": "no"}, headers=bearer(key)) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["decided_by"] == f"key:{record.id} (ana's key)"


async def test_an_unconnected_account_answers_with_a_connect_link_until_connected(
        api: Served) -> None:
    u3 = api.tokens["u3"]
    status, tools = await get(api, "/api/v1/tools", u3)
    assert {t["name"]: t["connection"] for t in tools}["shop_get_order"] is None
    order = pending_order(api)
    result = await api.call("shop_get_order", {"order_id": order}, u3)
    assert result["status"] == "connection_required" and result["is_error"] is True
    data = result["data"]
    link = data["connect_url"]
    assert data["connector"] == "shop" and data["reason"] == "not_connected"
    assert link.startswith(api.at("/connect/")) and data["expires_at"]
    assert ("To do this I need access to your Sandbox Shop account. Open this link to "
            f"connect it: {link}") in result["text"]
    session = await api.connect_session(link)
    assert (session["status"], session["end_user"], session["connectors"]) == (
        "pending", "u3", ["shop"])
    # the link is the end user's alone: the audit keeps that one was given, not the link
    status, audit = await get(api, "/api/v1/tool-calls", u3)
    assert status == 200 and audit[0]["status"] == "connection_required"
    assert link.rsplit("/", 1)[1] not in json.dumps(audit)
    # u3 opens it and connects their shop with their key; the same call then works, well
    # within the catalog's cache time
    async with api.http.get(link) as resp:
        assert resp.status == 200 and "Connect Sandbox Shop" in await resp.text()
    async with api.http.post(f"{link}/shop", data={"api_key": api.canary},
                             headers={"Origin": api.url}) as resp:
        assert resp.status == 200, await resp.text()
    assert (await api.connect_session(link))["status"] == "connected"
    again = await api.call("shop_get_order", {"order_id": order}, u3)
    assert again["status"] == "ok", again
    await api.pw.flush()
    [call] = await api.pw.recent_calls()
    assert call.connection is not None and call.connection.startswith("shop-")


async def test_an_account_connected_by_another_process_is_used_at_once(
        api: Served) -> None:
    u3, order = api.tokens["u3"], pending_order(api)
    first = await api.call("shop_get_order", {"order_id": order}, u3)
    assert first["status"] == "connection_required"
    async with Patchwire(api.settings) as other:
        await other.add_connection("shop", "u3-shop",
                                   {"sandbox_url": api.sandbox.url, "api_key": api.canary},
                                   end_user="u3")
    again = await api.call("shop_get_order", {"order_id": order}, u3)
    assert again["status"] == "ok", again


async def test_without_connect_links_the_tool_says_to_ask_the_operator(
        api: Served) -> None:
    invoker = ToolInvoker(api.pw).for_end_user("u3")
    result = await invoker.invoke("shop_get_order", {"order_id": "1"})
    assert result.status == "connection_required" and result.is_error
    assert "ask the operator" in result.text
    assert result.data["connect_url"] is None and result.data["connector"] == "shop"
