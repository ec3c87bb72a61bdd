"""Tool search where people and programs reach it: ``GET /api/v1/tools/search`` (an
end user's token searches their tools only), the MCP endpoint's ``?mode=search`` and
``patchwire tools search``/``tools export --mode search`` from the command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from patchwire.sandbox import Sandbox
from patchwire.tools import CALL_TOOL, SEARCH_TOOLS, openai_strict_problems
from tests.support.api import problem_of
from tests.support.cli import Cli
from tests.support.end_users import Served, bearer, served
from tests.support.mcp import Env

TIMEOUT_S = 30.0


@pytest.fixture
async def api(store_url: str, tmp_path: Path, sandbox: Sandbox,
              canary: str) -> AsyncIterator[Served]:
    async with served(store_url, tmp_path / "home", sandbox, canary) as running:
        yield running


async def get(api: Served, path: str, token: str | None = None,
              **params: Any) -> tuple[int, Any]:
    async with api.http.get(api.at(path), params=params or None,
                            headers=bearer(token) if token else None) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_the_search_route_ranks_tools_as_name_action_and_score(api: Served) -> None:
    status, hits = await get(api, "/api/v1/tools/search", q="where is my order")
    assert status == 200, hits
    assert hits and set(hits[0]) == {"name", "action", "score"}
    assert "shop.get_order" in [h["action"] for h in hits]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    status, catalog = await get(api, "/api/v1/tools/search", q="refund a stripe payment",
                                catalog="true", limit="3")
    assert status == 200 and len(catalog) <= 3
    assert catalog[0]["action"] == "stripe.refund_payment"


async def test_an_end_users_search_finds_only_their_own_tools(api: Served) -> None:
    u1 = api.tokens["u1"]
    status, theirs = await get(api, "/api/v1/tools", u1)
    assert status == 200
    status, hits = await get(api, "/api/v1/tools/search", u1, q="get order", limit="50")
    assert status == 200 and hits
    assert {h["name"] for h in hits} <= {t["name"] for t in theirs}
    assert "u2" not in json.dumps(hits) and "acme" not in json.dumps(hits)


@pytest.mark.parametrize("query", ["", "x" * 501])
async def test_an_empty_or_overlong_query_is_a_problem(api: Served, query: str) -> None:
    async with api.http.get(api.at("/api/v1/tools/search"), params={"q": query}) as resp:
        await problem_of(resp, 422)


async def test_the_mcp_endpoints_mode_parameter_offers_search_mode(
        env: Env, mcp_url: str) -> None:
    async with asyncio.timeout(TIMEOUT_S), Client(f"{mcp_url}?mode=search",
                                                  mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        found = await client.call_tool(SEARCH_TOOLS, {"query": "look up an order"})
        got = await client.call_tool(CALL_TOOL, {"name": "shop_get_order",
                                                 "arguments": {"order_id": env.order_id}})
    assert names == {SEARCH_TOOLS, CALL_TOOL}
    assert found.structured_content is not None
    assert "shop_get_order" in {t["name"] for t in found.structured_content["tools"]}
    assert got.is_error is False and got.structured_content is not None
    assert got.structured_content["id"] == env.order_id
    async with asyncio.timeout(TIMEOUT_S), Client(mcp_url, mode="legacy") as client:
        every = {t.name for t in (await client.list_tools()).tools}
    assert "shop_get_order" in every and SEARCH_TOOLS not in every


@pytest.mark.slow
async def test_tools_search_and_export_in_search_mode_from_the_command_line(
        tmp_path: Path, sandbox: Sandbox, canary: str) -> None:
    cli = Cli(tmp_path)
    added = await cli("connection", "add", "shop", "--name", "acme",
                      "--set", f"sandbox_url={sandbox.url}", "--set-env", "api_key=K",
                      env={"K": canary})
    assert added.code == 0, added
    # one at a time: each command is a process of its own (bounded in tests.support.cli)
    mine = await cli("tools", "search", "where is my order", "--json")
    catalog = await cli("tools", "search", "give the customer their money back on stripe",
                        "--json", "--catalog", "--connector", "stripe", "--limit", "2")
    exported = await cli("tools", "export", "--format", "openai", "--mode", "search")
    empty = await cli("tools", "search", "  ")
    bad_mode = await cli("tools", "export", "--mode", "some")
    assert mine.code == 0, mine
    assert "shop.get_order" in [h["action"] for h in mine.json()]
    assert catalog.code == 0, catalog
    hits = catalog.json()
    assert len(hits) <= 2 and all(h["action"].startswith("stripe.") for h in hits)
    assert hits[0]["action"] == "stripe.refund_payment"
    assert isinstance(hits[0]["score"], float) and hits[0]["name"] == "stripe_refund_payment"
    assert exported.code == 0, exported
    definitions = exported.json()
    assert [d["function"]["name"] for d in definitions] == [SEARCH_TOOLS, CALL_TOOL]
    assert all(openai_strict_problems(d) == [] for d in definitions)
    assert empty.code == 2 and bad_mode.code == 2
