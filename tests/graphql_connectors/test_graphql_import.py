"""Importing GraphQL schemas: one action per root field, inputs from arguments, bounded
selections, every document valid against the schema, every tool within the providers'
rules; GitHub's public schema (npm @octokit/graphql-schema) in under 3 s."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from graphql import introspection_from_schema, parse, validate

from patchwire.connectors import ConnectorRegistry, load_connector_file, load_connector_text
from patchwire.connectors.graphql import import_graphql, load_schema
from patchwire.connectors.openapi import ImportResult
from patchwire.errors import OpenAPIImportError
from patchwire.tools import (
    ToolCatalog,
    anthropic_problems,
    export_tools,
    mcp_problems,
    openai_strict_problems,
)
from tests.support.graphql import SCHEMA, SDL

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".fixtures-cache" / "graphql" / "node_modules" / "@octokit" / "graphql-schema"

CHECKERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "openai": openai_strict_problems,
    "anthropic": anthropic_problems,
    "mcp": mcp_problems,
}


def _provider_failures(result_connector: Any) -> tuple[list[str], int, int]:
    catalog = ToolCatalog.build(ConnectorRegistry([result_connector]), every_action=True)
    failures: list[str] = []
    for fmt, check in CHECKERS.items():
        for definition in export_tools(catalog, fmt):  # type: ignore[arg-type]
            name = definition.get("name") or definition["function"]["name"]
            failures += [f"{fmt} {name}: {p}" for p in check(definition)]
    strict = sum(1 for d in export_tools(catalog, "openai") if d["function"]["strict"])
    return failures, strict, len(catalog)


def test_each_root_field_becomes_an_action_with_its_arguments_as_input() -> None:
    result = import_graphql(SDL, name="demo", base_url="https://api.example.com")
    actions = result.connector.actions
    assert set(actions) == {"repository", "echo", "items", "rate_limit", "secret", "partial",
                            "delete_all", "add_item"}
    repo = actions["repository"]
    assert repo.input == {"type": "object", "additionalProperties": False,
                          "properties": {"owner": {"type": "string"},
                                         "name": {"type": "string"}},
                          "required": ["owner", "name"]}
    assert repo.graphql is not None and repo.graphql.kind == "query"
    add = actions["add_item"]
    assert add.graphql is not None and add.graphql.kind == "mutation"
    item_input = add.input["properties"]["input"]
    assert item_input["required"] == ["name"]
    assert item_input["properties"]["kind"] == {"type": "string", "enum": ["SMALL", "LARGE"]}
    assert actions["items"].pagination is not None
    assert actions["items"].pagination.style == "relay"
    assert "pageInfo { hasNextPage endCursor }" in (actions["items"].graphql.document
                                                    if actions["items"].graphql else "")


def test_every_generated_document_is_valid_against_the_schema_and_sends_variables() -> None:
    result = import_graphql(SDL, name="demo", base_url="https://api.example.com")
    for name, action in result.connector.actions.items():
        assert action.graphql is not None
        assert validate(SCHEMA, parse(action.graphql.document)) == [], name
        for prop in action.input["properties"]:
            assert f"${prop}" in action.graphql.document


def test_the_generated_yaml_loads_back_as_the_same_connector() -> None:
    result = import_graphql(SDL, name="demo", base_url="https://api.example.com")
    loaded = load_connector_text(result.to_yaml())
    assert loaded == result.connector


def test_an_introspection_result_imports_like_its_sdl() -> None:
    from_sdl = import_graphql(SDL, name="demo", base_url="https://x.example")
    from_json = import_graphql({"data": introspection_from_schema(SCHEMA)}, name="demo",
                               base_url="https://x.example")
    assert set(from_json.connector.actions) == set(from_sdl.connector.actions)


def test_fields_choose_the_actions_and_an_unknown_field_is_named() -> None:
    result = import_graphql(SDL, name="demo", fields=["repository", "add_item"])
    assert set(result.connector.actions) == {"repository", "add_item"}
    assert result.connector.base_url == "{base_url}"
    with pytest.raises(OpenAPIImportError, match="no root field named nope"):
        import_graphql(SDL, fields=["nope"])


def test_a_custom_scalar_is_a_string_that_says_which_scalar() -> None:
    sdl = '"An ISO-8601 time" scalar DateTime\ntype Query { at(when: DateTime!): String }'
    action = import_graphql(sdl).connector.actions["at"]
    assert action.input["properties"]["when"] == {
        "type": "string", "description": "a DateTime (GraphQL scalar): An ISO-8601 time"}


def test_a_recursive_input_type_stops_at_a_bounded_depth() -> None:
    sdl = ("input Filter { and: [Filter!], name: String }\n"
           "type Query { find(filter: Filter): [String] }")
    schema = import_graphql(sdl).connector.actions["find"].input
    text = json.dumps(schema)
    assert "nested too deep to describe here" in text
    assert text.count('"and"') <= 5


def test_fields_needing_arguments_are_left_out_of_selections() -> None:
    sdl = ("type User { id: ID!, name: String, avatar(size: Int!): String, "
           "friend: User }\ntype Query { me: User }")
    document = import_graphql(sdl).connector.actions["me"].graphql
    assert document is not None
    assert "avatar" not in document.document
    assert "friend { id name" in document.document


def test_a_schema_that_is_not_one_is_an_import_error() -> None:
    with pytest.raises(OpenAPIImportError, match="not an introspection result"):
        import_graphql({"openapi": "3.0.0"})
    with pytest.raises(OpenAPIImportError, match="not a usable GraphQL schema"):
        import_graphql("type Query {\n  broken(: Int }\n")


def test_generated_actions_pass_every_providers_rules() -> None:
    result = import_graphql(SDL, name="demo", base_url="https://api.example.com")
    failures, strict, total = _provider_failures(result.connector)
    assert failures == []
    assert strict == total


def _github_fixture() -> Path:
    path = GITHUB / "schema.json"
    if not path.exists():
        reason = f"GitHub's GraphQL schema is not installed ({path}); run scripts/ci-graphql.sh"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.mark.slow
def test_githubs_public_schema_imports_into_valid_provider_safe_actions(
        tmp_path: Path) -> None:
    path = _github_fixture()
    started = time.perf_counter()
    result = import_graphql(path, name="github", base_url="https://api.github.com")
    elapsed = time.perf_counter() - started
    # reported, not asserted: bench/graphql_import.py measures it
    print(f"\nGitHub GraphQL schema ({path.name}): {len(result.connector.actions)} actions "
          f"in {elapsed:.2f} s")
    assert len(result.connector.actions) >= 200
    schema = load_schema(path)
    assert len(schema.type_map) > 1500
    for name, action in result.connector.actions.items():
        assert action.graphql is not None
        assert validate(schema, parse(action.graphql.document)) == [], name
    failures, strict, total = _provider_failures(result.connector)
    assert failures == [], "\n".join(failures[:30])
    assert strict >= 0.9 * total
    # written out, it loads back with every check of a hand-written connector
    saved = tmp_path / "github.yaml"
    gql = result.connector.graphql
    assert gql is not None
    connector = result.connector.model_copy(
        update={"graphql": gql.model_copy(update={"schema_file": str(path)})})
    saved.write_text(ImportResult(connector, source=str(path)).to_yaml(), encoding="utf-8")
    assert load_connector_file(saved) == connector
