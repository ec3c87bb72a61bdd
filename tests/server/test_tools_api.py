"""The tools routes of the REST API: catalog, calling a tool, the approvals queue, audit."""

from __future__ import annotations

from typing import Any

from tests.support.api import PROBLEM_BASE, Api, problem_of


def order_status(api: Api, order_id: str) -> Any:
    return api.sandbox.state.apis["shop"].orders[order_id]["status"]  # type: ignore[attr-defined]


async def test_the_catalog_lists_the_connections_tools_with_their_safety_flags(api: Api) -> None:
    async with api.http.get(api.at("/api/v1/tools")) as resp:
        assert resp.status == 200, await resp.text()
        tools = {t["name"]: t for t in await resp.json()}
    assert {t["connection"] for t in tools.values()} == {"acme"}
    assert tools["shop_get_order"]["read_only"] and not tools["shop_get_order"]["confirm"]
    assert tools["shop_update_order_status"]["confirm"]
    async with api.http.get(api.at("/api/v1/tools"), params={"read_only": "true"}) as resp:
        assert all(t["read_only"] for t in await resp.json())


async def test_a_gated_tool_call_waits_for_a_person_and_a_decision_is_made_once(
        api: Api) -> None:
    order = next(o for o, row in api.sandbox.state.apis["shop"].orders.items()  # type: ignore[attr-defined]
                 if row["status"] == "pending")
    call = api.at("/api/v1/tools/shop_update_order_status/call")
    body = {"arguments": {"order_id": order, "status": "cancelled"}, "session_id": "web-1"}
    async with api.http.post(call, json=body) as resp:
        pending = await resp.json()
    assert pending["status"] == "pending_approval" and pending["is_error"]
    assert order_status(api, order) == "pending"

    async with api.http.get(api.at("/api/v1/approvals")) as resp:
        (queued,) = await resp.json()
    assert queued["id"] == pending["approval_id"] and queued["status"] == "pending"
    assert queued["arguments"] == body["arguments"]

    decide = api.at(f"/api/v1/approvals/{queued['id']}/approve")
    async with api.http.post(decide, json={"by": "ana", "reason": "customer asked"}) as resp:
        assert resp.status == 200, await resp.text()
        # who decided is the identity that sent it (here: no keys, so "local"), never the
        # name the caller typed
        assert (await resp.json())["decided_by"] == "local"
    async with api.http.post(api.at(f"/api/v1/approvals/{queued['id']}/deny"), json={}) as resp:
        late = await problem_of(resp, 409)
    assert late["type"] == PROBLEM_BASE + "approval_already_decided"
    assert "already approved by local" in late["detail"]

    async with api.http.post(call, json=body) as resp:
        done = await resp.json()
    assert done["status"] == "ok", done
    assert order_status(api, order) == "cancelled"

    async with api.http.get(api.at("/api/v1/tool-calls"),
                            params={"session_id": "web-1"}) as resp:
        audit = await resp.json()
    assert [c["status"] for c in audit] == ["ok", "pending_approval"]


async def test_unknown_approvals_and_bad_filters_are_problems(api: Api) -> None:
    async with api.http.post(api.at("/api/v1/approvals/nope/approve"), json={}) as resp:
        missing = await problem_of(resp, 404)
    assert missing["type"] == PROBLEM_BASE + "unknown_approval"
    async with api.http.get(api.at("/api/v1/approvals"), params={"status": "maybe"}) as resp:
        await problem_of(resp, 422)


async def test_invalid_tool_arguments_come_back_as_a_result_the_model_can_read(
        api: Api) -> None:
    async with api.http.post(api.at("/api/v1/tools/shop_get_order/call"),
                             json={"arguments": {"order_id": []}}) as resp:
        result = await resp.json()
    assert result["status"] == "invalid_arguments" and "order_id" in result["text"]
