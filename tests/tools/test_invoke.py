"""The tool call path: validation written for the model, the approval gate, shaping, audit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from patchwire import Patchwire
from patchwire.sandbox import Sandbox
from patchwire.store.tools import ToolRepository
from patchwire.tools import Decision, Tool, ToolInvoker
from tests.support.leaks import encoded_forms
from tests.support.sandboxes import connected


@pytest.fixture
async def pw(tmp_path: Path, sandbox: Sandbox, canary: str,
             store_url: str) -> AsyncIterator[Patchwire]:
    """The tool call path on SQLite and on PostgreSQL (approvals and the audit are rows)."""
    async with connected(tmp_path / "home", sandbox, canary, store_url) as opened:
        yield opened


def charges(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox.state.apis["payments"].charges  # type: ignore[attr-defined, no-any-return]


async def a_charge_id(pw: Patchwire) -> str:
    page = await pw.call("payments.list_charges", {"limit": 1})
    return str(page["data"][0]["id"])


async def test_a_read_tool_returns_the_upstream_result_as_json_for_the_model(
        pw: Patchwire) -> None:
    result = await ToolInvoker(pw).invoke("shop_get_order", {"order_id": "7"}, session_id="s1")
    assert result.status == "ok" and not result.is_error
    assert json.loads(result.text) == result.data and str(result.data["id"]) == "7"
    (audited,) = await ToolInvoker(pw).tool_calls(session_id="s1")
    assert (audited.tool, audited.target, audited.connection, audited.status,
            audited.validation_failed) == ("shop_get_order", "shop.get_order", "acme", "ok",
                                           False)


async def test_invalid_arguments_name_the_field_and_what_was_expected_and_call_nothing(
        pw: Patchwire) -> None:
    result = await ToolInvoker(pw).invoke("shop_get_order", {"order_id": 7},
                                          session_id="s2")
    assert result.status == "invalid_arguments" and result.is_error
    assert "order_id" in result.text and "string" in result.text and "again" in result.text
    assert await pw.recent_calls() == []
    (audited,) = await ToolInvoker(pw).tool_calls(session_id="s2")
    assert audited.validation_failed and audited.status == "invalid_arguments"


async def test_a_missing_required_argument_is_named(pw: Patchwire) -> None:
    result = await ToolInvoker(pw).invoke("shop_get_order", {})
    assert result.status == "invalid_arguments" and "order_id: is required" in result.text


async def test_arguments_that_are_not_an_object_are_refused_readably(pw: Patchwire) -> None:
    result = await ToolInvoker(pw).invoke("shop_get_order", [1, 2])  # type: ignore[arg-type]
    assert result.status == "invalid_arguments" and "JSON object" in result.text


async def test_nulls_a_strict_mode_model_sends_for_optional_arguments_are_dropped(
        pw: Patchwire) -> None:
    result = await ToolInvoker(pw).invoke("shop_list_orders",
                                          {"customer_id": None, "status": None, "limit": 2})
    assert result.status == "ok", result.text


async def test_an_unknown_tool_lists_the_tools_there_are(pw: Patchwire) -> None:
    result = await ToolInvoker(pw).invoke("shop_get_ordr", {"order_id": "1"})
    assert result.status == "unknown_tool" and "shop_get_order" in result.text


async def test_an_upstream_error_is_readable_and_holds_no_secret(
        pw: Patchwire, canary: str) -> None:
    result = await ToolInvoker(pw).invoke("shop_get_order", {"order_id": "999999"},
                                          session_id="s3")
    assert result.status == "error" and "not_found" in result.text
    assert "Traceback" not in result.text
    (audited,) = await ToolInvoker(pw).tool_calls(session_id="s3")
    for form in encoded_forms(canary).values():
        assert form.decode(errors="ignore") not in result.text + str(audited)


async def test_a_scoped_catalog_offers_only_that_connections_tools(pw: Patchwire) -> None:
    catalog = await ToolInvoker(pw, connections=["acme"]).catalog()
    assert catalog.names() and {t.connector for t in catalog} == {"shop"}
    result = await ToolInvoker(pw, connections=["acme"]).invoke(
        "payments_get_charge", {"charge_id": "ch_1"})
    assert result.status == "unknown_tool"


async def test_a_scope_naming_a_missing_connection_is_an_error_not_a_crash(
        pw: Patchwire) -> None:
    result = await ToolInvoker(pw, connections=["nobody"]).invoke("shop_get_order",
                                                                  {"order_id": "1"})
    assert result.status == "error" and "nobody" in result.text


# -- approval gate --------------------------------------------------------------------------


async def test_a_confirm_tool_waits_for_approval_then_runs_once(
        pw: Patchwire, sandbox: Sandbox) -> None:
    invoker, repo = ToolInvoker(pw), ToolRepository(pw.store)
    args = {"amount": 1200, "currency": "usd", "customer": "cus_0001"}
    before = len(charges(sandbox))
    first = await invoker.invoke("payments_create_charge", args, session_id="chat")
    assert first.status == "pending_approval" and first.approval_id
    assert f"patchwire approvals approve {first.approval_id}" in first.text
    again = await invoker.invoke("payments_create_charge", args)
    assert again.status == "pending_approval" and again.approval_id == first.approval_id
    assert len(charges(sandbox)) == before
    (pending,) = await repo.list_approvals(status="pending")
    assert pending.arguments == args and pending.subject == "payments_create_charge"

    await repo.decide_approval(first.approval_id, approved=True, decided_by="ops:ana")
    ran = await invoker.invoke("payments_create_charge", args)
    assert ran.status == "ok" and ran.approval_id == first.approval_id
    assert len(charges(sandbox)) == before + 1
    used = await repo.get_approval(first.approval_id)
    assert (used.status, used.decided_by) == ("used", "ops:ana")
    # one yes lets one call through
    next_call = await invoker.invoke("payments_create_charge", args)
    assert next_call.status == "pending_approval" and next_call.approval_id != first.approval_id
    assert len(charges(sandbox)) == before + 1


async def test_an_approval_covers_only_the_exact_arguments_approved(
        pw: Patchwire, sandbox: Sandbox) -> None:
    invoker, repo = ToolInvoker(pw), ToolRepository(pw.store)
    charge = await a_charge_id(pw)
    small = await invoker.invoke("payments_refund_charge", {"charge_id": charge, "amount": 5})
    assert small.approval_id
    await repo.decide_approval(small.approval_id, approved=True, decided_by="ops")
    large = await invoker.invoke("payments_refund_charge", {"charge_id": charge, "amount": 500})
    assert large.status == "pending_approval"


async def test_a_denial_is_told_to_the_model_once_with_its_reason(pw: Patchwire) -> None:
    invoker, repo = ToolInvoker(pw), ToolRepository(pw.store)
    args = {"appointment_id": "apt_missing"}
    first = await invoker.invoke("calendar_cancel_appointment", args)
    assert first.status == "pending_approval" and first.approval_id
    await repo.decide_approval(first.approval_id, approved=False, decided_by="ops:bo",
                               reason="the customer called back")
    denied = await invoker.invoke("calendar_cancel_appointment", args)
    assert denied.status == "denied"
    assert "ops:bo" in denied.text and "the customer called back" in denied.text
    anew = await invoker.invoke("calendar_cancel_appointment", args)
    assert anew.status == "pending_approval" and anew.approval_id != first.approval_id


async def test_a_person_asked_in_the_moment_decides_and_the_decision_is_recorded(
        pw: Patchwire, sandbox: Sandbox) -> None:
    asked: list[tuple[str, Mapping[str, Any]]] = []

    async def yes(tool: Tool, arguments: Mapping[str, Any]) -> Decision:
        asked.append((tool.name, arguments))
        return Decision(True, "elicitation:ana")

    async def no(tool: Tool, arguments: Mapping[str, Any]) -> Decision:
        return Decision(False, "elicitation:ana", "not today")

    invoker, repo = ToolInvoker(pw), ToolRepository(pw.store)
    args = {"amount": 900, "currency": "eur"}
    before = len(charges(sandbox))
    declined = await invoker.invoke("payments_create_charge", args, confirm=no)
    assert declined.status == "denied" and "not today" in declined.text
    assert len(charges(sandbox)) == before
    ran = await invoker.invoke("payments_create_charge", args, confirm=yes)
    assert ran.status == "ok" and len(charges(sandbox)) == before + 1
    assert asked == [("payments_create_charge", args)]
    decided = {a.id: a for a in await repo.list_approvals(limit=10)}
    assert decided[ran.approval_id or ""].decided_by == "elicitation:ana"
    assert decided[declined.approval_id or ""].status == "denied"


async def test_a_client_that_cannot_ask_falls_back_to_a_pending_approval(
        pw: Patchwire) -> None:
    async def cannot(tool: Tool, arguments: Mapping[str, Any]) -> None:
        return None

    result = await ToolInvoker(pw).invoke("payments_create_charge",
                                          {"amount": 900, "currency": "eur"}, confirm=cannot)
    assert result.status == "pending_approval"


async def test_read_tools_are_never_gated(pw: Patchwire) -> None:
    async def refuse(tool: Tool, arguments: Mapping[str, Any]) -> Decision:
        raise AssertionError("a read tool must not ask")

    result = await ToolInvoker(pw).invoke("payments_list_charges", {"limit": 1},
                                          confirm=refuse)
    assert result.status == "ok"


# -- shaping and stored settings ------------------------------------------------------------


async def test_stored_tool_settings_shape_results_and_reach_a_running_invoker(
        pw: Patchwire) -> None:
    now = [0.0]
    invoker = ToolInvoker(pw, clock=lambda: now[0])
    assert (await invoker.invoke("shop_list_customers", {"limit": 50})).status == "ok"
    await invoker.repository.set_tool_settings(
        "shop.list_customers", {"result": "data.{'id': id, 'email': email}",
                                "max_result_bytes": 400})
    now[0] += 60  # the catalog is rebuilt once it is older than its TTL
    result = await invoker.invoke("shop_list_customers", {"limit": 50})
    assert result.status == "ok" and result.truncated
    assert set(result.data[0]) == {"id", "email"}
    assert len(result.text.encode()) <= 400 and "of 50 items" in result.text


async def test_a_disabled_tool_is_gone_and_arguments_in_the_audit_are_redacted(
        pw: Patchwire) -> None:
    invoker = ToolInvoker(pw)
    await invoker.repository.set_tool_settings("shop.get_order", {"enabled": False})
    catalog = await invoker.catalog(refresh=True)
    assert "shop_get_order" not in catalog
    await invoker.invoke("shop_get_order", {"order_id": "1", "api_token": "tok-123456"},
                         session_id="s9")
    (audited,) = await invoker.tool_calls(session_id="s9")
    assert audited.status == "unknown_tool"
    assert audited.arguments == {"order_id": "1", "api_token": "***"}
