"""Tool search and search mode: a request in people's words finds the action; the two
meta-tools (``search_tools``, ``call_tool``) reach only the caller's tools, through the
same path (validation, approval gate, call path, audit) as a direct call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import yaml
from mcp import Client
from mcp_types.version import LATEST_MODERN_VERSION

from patchwire import Patchwire
from patchwire.sandbox import Sandbox
from patchwire.tools import (
    CALL_TOOL,
    MAX_QUERY_CHARS,
    SEARCH_TOOLS,
    SearchMode,
    Tool,
    ToolIndex,
    ToolInvoker,
    anthropic_problems,
    catalog_tool_index,
    export_tools,
    mcp_problems,
    openai_strict_problems,
)
from patchwire.tools._mcp import build_server
from tests.support.mcp import CONFIRM_TOOL, Env
from tests.support.settings import local_settings

TIMEOUT_S = 30.0
QUERIES = Path(__file__).resolve().parents[2] / "bench" / "data" / "tool_queries"
#: the labelled set is a measure once it is this big (issue 18 asks for 300 requests)
MIN_LABELLED = 300
#: recall@5 the labelled set must keep (a count, not timing; bench/tool_search.py
#: reports the figure itself)
FLOOR = 0.85


def top(query: str, *, connector: str | None = None, limit: int = 5) -> list[str]:
    return [h.tool.target for h in catalog_tool_index().search(query, connector=connector,
                                                               limit=limit)]


# -- the index ---------------------------------------------------------------------------

def test_a_request_in_users_words_finds_the_action() -> None:
    assert "stripe.refund_payment" in top("give the customer their money back on stripe")
    assert top("cancel the stripe subscription sub_1MowQVLkdIwHu7ixeRlqHVzs")[0] == (
        "stripe.cancel_subscription")
    # an e-mail address in the request stands for "email": the tool that takes one
    assert top("is maria@example.com a customer in stripe")[0] == "stripe.find_customers"


def test_the_connector_filter_keeps_only_that_connectors_tools() -> None:
    found = top("list everything", connector="stripe", limit=50)
    assert found and all(t.startswith("stripe.") for t in found)
    assert top("cancel my subscription", connector="stripe")[0] == "stripe.cancel_subscription"
    assert top("refund a payment", connector="no_such_connector") == []


@pytest.mark.parametrize("hostile", [
    'refund" OR payment*',
    "refund NEAR(payment stripe, 2)",
    "{refund} : title:payment -stripe ^ AND NOT",
    "refund') ; DROP TABLE tools; --",
    "refund\x00payment\r\nX-Injected: 1",
])
def test_injection_looking_queries_are_inert(hostile: str) -> None:
    # nothing of a query is syntax: it ranks as the words it holds
    words = " ".join(w for w in hostile.replace("\x00", " ").split())
    assert top(hostile) == top(words.translate({ord(c): " " for c in "\"'(){}:;^*-,"}))


def test_a_request_naming_a_connector_ranks_its_tools_first() -> None:
    # nothing but the name matches: the connector's tools still come first
    assert all(t.startswith("zendesk.") for t in top("anything new in Zendesk?"))
    # "GitHub" written whole, split ("git hub" from the camel case) or lower-case
    for written in ("open an issue in GitHub", "open an issue in github"):
        assert top(written)[0] == "github.create_issue"
    # a vendor's first word names all its connectors; a whole name only that connector
    index = catalog_tool_index()
    assert {"google_calendar", "google_drive"} <= index.mentioned_connectors("my google stuff")
    assert index.mentioned_connectors("in my Dropbox") == {"dropbox"}


def test_an_everyday_word_names_a_connector_only_when_written_as_a_name() -> None:
    index = catalog_tool_index()
    assert index.mentioned_connectors("close the ticket about the printer") == frozenset()
    assert index.mentioned_connectors("the lead in Close") == {"close"}
    assert index.mentioned_connectors("refund it on square") == {"square"}
    assert index.mentioned_connectors("a 3 lb box to Seattle") == frozenset()
    # a day is never a connector on its own, monday.com by its whole name is
    assert index.mentioned_connectors("ship it on Monday") == frozenset()
    assert index.mentioned_connectors("the board on monday.com") == {"monday"}


def test_the_requests_verb_prefers_actions_that_do_it() -> None:
    # the same words, asked to remove, to read, to make
    assert top("delete the Trello card about the old launch")[0] == "trello.delete_card"
    assert top("show me the Trello card about the old launch")[0].startswith(
        ("trello.get_", "trello.list_", "trello.search_"))
    assert top("can you please make a Trello card about the old launch")[0] == (
        "trello.create_card")


def tool(target: str, summary: str, *, required: tuple[str, ...] = (),
         properties: dict[str, Any] | None = None) -> Tool:
    """A catalog-free tool: the mechanisms below are shown on a few made-up actions, so
    no connector file's wording (which others edit) decides the outcome."""
    connector = target.split(".", 1)[0]
    return Tool(name=target.replace(".", "_"), target=target, connector=connector,
                connection=None, title=summary, description=summary,
                input_schema={"type": "object", "properties": properties or {},
                              "required": list(required)},
                read_only=False, destructive=False, idempotent=False, confirm=False)


def first(tools: list[Tool], query: str) -> str:
    hits = ToolIndex.build(tools).search(query, limit=5)
    assert hits, query
    return hits[0].tool.target


def test_a_common_word_that_is_also_a_connector_name_does_not_pull_that_connector_up(
        ) -> None:
    tools = [tool("front.list_conversations", "List conversations in a shared inbox"),
             tool("front.archive_conversation", "Archive a conversation"),
             tool("crm.update_deal", "Update a deal: its stage or amount")]
    # "front" as an everyday word: the deal is what is asked about
    assert first(tools, "move the deal to the front of the queue") == "crm.update_deal"
    # written as a name, it is the service
    assert first(tools, "archive that conversation in Front") == (
        "front.archive_conversation")
    # a service's everyday-word name that is only part of its name counts when written
    # like a name ("a Teams link": Microsoft Teams)
    teams = [tool("microsoft_teams.create_meeting_link", "Create an online meeting link"),
             tool("files.get_download_link", "Get a download link for a file")]
    index = ToolIndex.build(teams, connectors=())
    assert index.mentioned_connectors("I need a Teams link") == frozenset()
    assert first(teams, "I need a Teams link for a call at 4") == (
        "microsoft_teams.create_meeting_link")


def test_an_ids_prefix_is_matched_by_a_quoted_id_never_by_the_plain_word() -> None:
    tools = [tool("vercel.list_projects", "List the projects of the account",
                  properties={"teamId": {"type": "string", "pattern": "^team_[A-Za-z0-9]+$"}}),
             tool("hr.list_absences", "List absences: who is on leave")]
    assert first(tools, "who on the team is on leave next week?") == "hr.list_absences"
    assert first(tools, "what is there for team_8sKq2 now") == "vercel.list_projects"
    # an issue key stands for "issue", its project's letters are no word ("PAY")
    tracker = [tool("tracker.transition_issue", "Move an issue to another status"),
               tool("payments.list_payments", "List payments")]
    assert first(tracker, "move PAY-311 to Done") == "tracker.transition_issue"


def test_words_that_only_narrow_a_request_do_not_pick_the_tool() -> None:
    tools = [tool("calendar.list_events", "List the events on a calendar"),
             tool("calendar.quick_add_event",
                  "Add an event from a sentence like 'lunch tomorrow at noon'")]
    assert first(tools, "what's on my calendar tomorrow?") == "calendar.list_events"


def test_looking_for_something_prefers_a_search_to_a_read() -> None:
    tools = [tool("box.get_file", "Get a file's details", required=("file_id",)),
             tool("box.search", "Search files by name or content")]
    assert first(tools, "look for the signed NDA") == "box.search"
    assert first(tools, "is the NDA already somewhere in there?") == "box.search"


def test_a_read_of_one_thing_by_its_id_yields_to_a_list_when_no_id_is_quoted() -> None:
    tools = [tool("desk.get_ticket", "Get one ticket with its comments",
                  required=("ticket_id",)),
             tool("desk.list_tickets", "List tickets, newest first")]
    assert first(tools, "what tickets came in about refunds") == "desk.list_tickets"
    assert first(tools, "show me ticket 4821") == "desk.get_ticket"


def test_the_words_of_a_dictated_message_do_not_pick_the_tool() -> None:
    tools = [tool("chat.post_message", "Post a message in a channel"),
             tool("tables.update_row", "Update a row of a table: mark it ready")]
    assert first(tools, "message the kitchen channel that table 12 is ready") == (
        "chat.post_message")
    assert first(tools, "mark the row of table 12 ready") == "tables.update_row"


def test_a_denied_verb_is_not_what_is_asked_the_verb_after_please_is() -> None:
    tools = [tool("cal.create_booking", "Make a booking for a slot"),
             tool("cal.cancel_booking", "Cancel a booking")]
    assert first(tools, "I can't make my booking anymore, please cancel it") == (
        "cal.cancel_booking")


def test_a_request_opening_with_a_channel_as_its_verb_asks_to_send() -> None:
    tools = [tool("books.get_invoice", "Get an invoice with the client's email address"),
             tool("books.send_invoice", "Send an invoice to the client")]
    assert first(tools, "email invoice 1037 to the client again") == "books.send_invoice"
    # "open" an email reads it; "open" a ticket makes one
    mail = [tool("mail.get_message", "Read one email"),
            tool("mail.create_draft", "Create an email draft")]
    assert first(mail, "open that email from Tom") == "mail.get_message"


def test_a_phone_number_in_a_request_stands_for_phone() -> None:
    tools = [tool("contacts.find_by_phone", "Find contacts by phone number"),
             tool("contacts.find_by_email", "Find contacts by e-mail address")]
    assert first(tools, "who is +14155550100?") == "contacts.find_by_phone"
    assert first(tools, "who is 4477009001234") == "contacts.find_by_phone"


def test_everyday_words_reach_the_api_words() -> None:
    till = [tool("pos.list_payments", "List payments taken at the point of sale (POS)"),
            tool("hr.whos_out", "Who is out between two dates")]
    assert first(till, "what came in on the till between 9 and noon today") == (
        "pos.list_payments")
    pesos = [tool("fx.get_exchange_rate", "The current exchange rate between two currencies"),
             tool("shop.get_order", "Get an order with its total")]
    assert first(pesos, "how many pesos would I get for 500 dollars?") == (
        "fx.get_exchange_rate")
    bounced = [tool("mail.get_outbound_stats", "Sending statistics: sent, bounced, opened"),
               tool("mail.send_email", "Send an email")]
    assert first(bounced, "how many emails bounced this month?") == (
        "mail.get_outbound_stats")


def test_a_hostile_request_full_of_connector_names_ranks_and_stays_bounded() -> None:
    # every connector named at once, over the length cut: still an answer, no error,
    # and only what fits within the cut counts
    index = catalog_tool_index()
    names = " ".join(sorted({t.tool.connector for t in index.search("list", limit=50)}))
    flood = (names + " ") * 200
    assert len(top(flood)) == 5
    assert top(flood) == top(flood[:MAX_QUERY_CHARS])


def test_queries_without_words_find_nothing_and_long_ones_are_cut() -> None:
    assert top("") == [] and top("   ") == [] and top("?!%$#@") == []
    long = "refund a stripe payment " + "x " * 100_000
    assert top(long) == top(long[:MAX_QUERY_CHARS])


def test_the_labelled_requests_find_their_action_in_the_top_five() -> None:
    labelled: list[tuple[str, str]] = []
    for path in sorted(QUERIES.glob("*.yaml")):
        labelled += [(i["q"], i["a"]) for i in yaml.safe_load(path.read_text()) or []]
    if len(labelled) < MIN_LABELLED:
        pytest.skip(f"{len(labelled)} labelled requests; the floor applies from "
                    f"{MIN_LABELLED}")
    found = sum(1 for q, a in labelled if a in top(q))
    assert found / len(labelled) >= FLOOR, (found, len(labelled))


# -- search mode's definitions -----------------------------------------------------------

@pytest.mark.parametrize("format_", ["openai", "openai-responses", "anthropic", "mcp"])
def test_search_mode_exports_pass_every_providers_rules(format_: Any) -> None:
    definitions = export_tools([], format_, mode="search")
    assert len(definitions) == 2
    for d in definitions:
        if format_.startswith("openai"):
            assert openai_strict_problems(d) == []
            assert (d.get("function") or d)["strict"] is True
        elif format_ == "anthropic":
            assert anthropic_problems(d) == []
        else:
            assert mcp_problems(d) == []
    names = {(d.get("function") or d)["name"] for d in definitions}
    assert names == {SEARCH_TOOLS, CALL_TOOL}


# -- search mode over an invoker -----------------------------------------------------------

async def test_search_tools_returns_the_tools_with_their_schemas(env: Env) -> None:
    invoker = ToolInvoker(env.pw, connections=["acme"])
    found = await SearchMode("openai").invoke(invoker, SEARCH_TOOLS,
                                              {"query": "where is my order", "connector": None})
    assert found.status == "ok"
    tools = json.loads(found.text)["tools"]
    by_name = {t["name"]: t for t in tools}
    assert "shop_get_order" in by_name
    assert all(openai_strict_problems({"type": "function", **t}) == [] for t in tools)
    assert by_name["shop_get_order"]["parameters"]["properties"]["order_id"]["type"] == "string"
    nothing = await SearchMode("mcp").invoke(invoker, SEARCH_TOOLS,
                                             {"query": "order", "connector": "stripe"})
    assert nothing.status == "ok" and "No connector named 'stripe'" in nothing.text


async def test_call_tool_goes_through_the_approval_gate_for_a_destructive_tool(
        env: Env) -> None:
    invoker = ToolInvoker(env.pw, connections=["acme"])
    mode = SearchMode("openai")
    result = await mode.invoke(invoker, CALL_TOOL, {
        "name": CONFIRM_TOOL,
        "arguments": json.dumps({"order_id": env.order_id, "status": "cancelled"})})
    assert result.status == "pending_approval" and result.approval_id
    order = await env.pw.call("shop.get_order", {"order_id": env.order_id},
                              connection="acme")
    assert order["status"] == "pending"  # nothing ran
    audit = await invoker.tool_calls()
    assert audit[0].tool == CONFIRM_TOOL and audit[0].status == "pending_approval"
    # arguments that are not an object are refused before any tool runs
    bad = await mode.invoke(invoker, CALL_TOOL, {"name": CONFIRM_TOOL, "arguments": "[1,"})
    assert bad.status == "invalid_arguments" and "not valid JSON" in bad.text
    invalid = await mode.invoke(invoker, CALL_TOOL, {
        "name": "shop_get_order", "arguments": json.dumps({"order_id": 42})})
    assert invalid.status == "invalid_arguments" and "order_id" in invalid.text


async def test_call_tool_of_a_disabled_tool_is_an_unknown_tool(env: Env) -> None:
    invoker = ToolInvoker(env.pw, connections=["acme"], catalog_ttl=0.0)
    await invoker.repository.set_tool_settings("shop.get_order", {"enabled": False})
    result = await SearchMode("anthropic").invoke(invoker, CALL_TOOL, {
        "name": "shop_get_order", "arguments": {"order_id": env.order_id}})
    assert result.status == "unknown_tool"


@pytest.fixture
async def two_end_users(tmp_path: Path, sandbox: Sandbox,
                        canary: str) -> AsyncIterator[Patchwire]:
    """u1's ``u1-shop``; u2's ``u2-work`` (default) and ``u2-home`` (label home)."""
    shop = {"sandbox_url": sandbox.url, "api_key": canary}
    async with Patchwire(local_settings(tmp_path / "home")) as opened:
        await opened.add_connection("shop", "u1-shop", shop, end_user="u1")
        await opened.add_connection("shop", "u2-work", shop, end_user="u2", label="work")
        await opened.add_connection("shop", "u2-home", shop, end_user="u2", label="home")
        await opened.set_default_connection("u2-work")
        yield opened


async def test_an_end_users_search_never_returns_another_end_users_tools(
        two_end_users: Patchwire) -> None:
    invoker = ToolInvoker(two_end_users)
    mode = SearchMode("mcp", limit=50)
    u2 = await mode.invoke(invoker.for_end_user("u2"), SEARCH_TOOLS, {"query": "get order"})
    assert "home_shop_get_order" in {t["name"] for t in u2.data["tools"]}
    u1 = invoker.for_end_user("u1")
    found = await mode.invoke(u1, SEARCH_TOOLS, {"query": "get order home work"})
    names = {t["name"] for t in found.data["tools"]}
    assert "shop_get_order" in names
    assert not any("home" in n or "work" in n or "u2" in n for n in names)
    assert "u2" not in found.text
    # and asking for u2's tool by name is an unknown tool, not a call through u2-home
    other = await mode.invoke(u1, CALL_TOOL, {"name": "home_shop_get_order",
                                              "arguments": {"order_id": "42"}})
    assert other.status == "unknown_tool" and "u2" not in other.text
    assert not await invoker.for_end_user("u2").tool_calls()


# -- the MCP server in search mode -----------------------------------------------------------

@pytest.mark.parametrize("era", ["legacy", LATEST_MODERN_VERSION])
async def test_mcp_search_mode_lists_two_tools_and_call_tool_dispatches(
        env: Env, era: str) -> None:
    server = build_server(ToolInvoker(env.pw, connections=["acme"]), mode="search")
    async with asyncio.timeout(TIMEOUT_S), Client(server, mode=era) as client:
        listed = (await client.list_tools()).tools
        assert {t.name for t in listed} == {SEARCH_TOOLS, CALL_TOOL}
        assert all(mcp_problems(t.model_dump(by_alias=True, exclude_none=True)) == []
                   for t in listed)
        found = await client.call_tool(SEARCH_TOOLS, {"query": "look up an order"})
        assert found.is_error is False and found.structured_content is not None
        assert "shop_get_order" in {t["name"] for t in found.structured_content["tools"]}
        result = await client.call_tool(CALL_TOOL, {
            "name": "shop_get_order", "arguments": {"order_id": env.order_id}})
        assert result.is_error is False, result
        assert result.structured_content and result.structured_content["id"] == env.order_id
        gated = await client.call_tool(CALL_TOOL, {
            "name": CONFIRM_TOOL, "arguments": {"order_id": env.order_id,
                                                "status": "cancelled"}})
        assert gated.is_error is True
        text = gated.content[0]
        assert isinstance(text, types.TextContent) and "approv" in text.text.lower()
    order = await env.pw.call("shop.get_order", {"order_id": env.order_id},
                              connection="acme")
    assert order["status"] == "pending"
