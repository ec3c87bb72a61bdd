"""`patchwire tools ...` and `patchwire approvals ...` as a user runs them."""

from __future__ import annotations

import pytest

from patchwire import Patchwire
from patchwire.sandbox import Sandbox
from patchwire.tools import ToolInvoker, openai_strict_problems
from tests.support.cli import Cli
from tests.support.settings import local_settings

#: slow (the patchwire command in subprocesses): out of the quick loop, `pytest -m "not slow"`
pytestmark = pytest.mark.slow


async def test_tools_are_listed_exported_and_enabled_from_the_command_line(
        cli: Cli, sandbox: Sandbox, canary: str) -> None:
    added = await cli("connection", "add", "shop", "--name", "acme",
                      "--set", f"sandbox_url={sandbox.url}", "--set-env", "api_key=K",
                      env={"K": canary})
    assert added.code == 0, added
    listed, exported, bound, bad_format = await cli.all(
        ["tools", "list", "--json"],
        ["tools", "export", "--format", "openai", "--connector", "shop"],
        ["tools", "list", "--connection", "acme", "--read-only"],
        ["tools", "export", "--format", "gemini"],
    )
    assert listed.code == 0, listed
    names = {t["name"]: t for t in listed.json()}
    assert names["payments_refund_charge"]["confirm"] and names["shop_get_order"]["read_only"]
    assert exported.code == 0, exported
    definitions = exported.json()
    assert {d["function"]["name"] for d in definitions} == {
        n for n in names if n.startswith("shop_")}
    assert all(openai_strict_problems(d) == [] for d in definitions)
    assert bound.code == 0 and "shop_get_order" in bound.out and "payments" not in bound.out
    assert "update_order_status" not in bound.out  # --read-only
    assert bad_format.code == 2 and "openai" in bad_format.err

    enabled = await cli("tools", "enable", "shop.get_order", "--name", "lookup_order",
                        "--result", "{'id': id, 'status': status}")
    assert enabled.code == 0, enabled
    disabled = await cli("tools", "disable", "shop.list_*")
    assert disabled.code == 0, disabled
    after = {t["name"] for t in (await cli("tools", "list", "--json")).json()}
    assert "lookup_order" in after and "shop_get_order" not in after
    assert not {"shop_list_orders", "shop_list_customers", "shop_list_products"} & after
    reset = await cli("tools", "reset", "shop.*")
    assert reset.code == 0, reset
    assert "shop_list_orders" in {t["name"] for t in (await cli("tools", "list", "--json")).json()}

    no_match, bad_expr, not_an_action = await cli.all(
        ["tools", "enable", "crm.*"],
        ["tools", "enable", "shop.get_order", "--result", "{{{"],
        ["tools", "enable", "shop.nope"],
    )
    assert no_match.code == 2 and "crm.*" in no_match.err
    assert bad_expr.code == 2 and "--result" in bad_expr.err
    assert not_an_action.code == 1 and "nope" in not_an_action.err


async def test_a_person_approves_or_denies_pending_tool_calls_from_the_command_line(
        cli: Cli, sandbox: Sandbox) -> None:
    settings = local_settings(cli.home)
    async with Patchwire(settings) as pw:
        await pw.add_connection("payments", "billing",
                                {"sandbox_url": sandbox.url, "secret_key": "pk_test_sandbox"})
        invoker = ToolInvoker(pw)
        first = await invoker.invoke("payments_create_charge",
                                     {"amount": 700, "currency": "usd"}, session_id="c1")
        second = await invoker.invoke("payments_create_charge",
                                      {"amount": 90_000, "currency": "usd"}, session_id="c1")
    assert first.approval_id and second.approval_id

    pending = await cli("approvals", "list", "--json")
    assert pending.code == 0, pending
    assert {a["id"] for a in pending.json()} == {first.approval_id, second.approval_id}
    approved, denied = await cli.all(
        ["approvals", "approve", first.approval_id, "--by", "ana"],
        ["approvals", "deny", second.approval_id, "--reason", "too much"],
    )
    assert approved.code == 0 and "approved" in approved.out, approved
    assert denied.code == 0 and "denied" in denied.out, denied
    again = await cli("approvals", "approve", second.approval_id)
    assert again.code == 1 and "already denied" in again.flat_err
    unknown = await cli("approvals", "show", "nope")
    assert unknown.code == 1 and "nope" in unknown.err
    shown = (await cli("approvals", "show", second.approval_id)).json()
    assert (shown["status"], shown["reason"]) == ("denied", "too much")
    assert shown["decided_by"].startswith("cli")

    async with Patchwire(settings) as pw:
        ran = await ToolInvoker(pw).invoke("payments_create_charge",
                                           {"amount": 700, "currency": "usd"}, session_id="c1")
    assert ran.status == "ok", ran.text
    audit = await cli("tools", "audit", "--session", "c1", "--json")
    assert [c["status"] for c in audit.json()] == ["ok", "pending_approval", "pending_approval"]
