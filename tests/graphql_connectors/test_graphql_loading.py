"""Loading GraphQL connectors: documents parsed and validated against the schema (SDL or
introspection JSON) with file:line errors, the operation's kind filled in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graphql import graphql_sync, introspection_from_schema

from patchwire.connectors import load_connector_file
from patchwire.connectors.graphql import load_schema
from patchwire.errors import SpecError
from tests.support.graphql import CONNECTOR, SCHEMA, write_connector


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_connector_file(write_connector(tmp_path, text))
    return [str(p) for p in caught.value.problems]


def test_the_kind_of_each_action_comes_from_its_document(tmp_path: Path) -> None:
    spec = load_connector_file(write_connector(tmp_path))
    kinds = {name: a.graphql.kind for name, a in spec.actions.items() if a.graphql}
    assert kinds["get_repository"] == "query" and kinds["delete_all"] == "mutation"
    assert spec.actions["get_repository"].reads_only
    assert not spec.actions["delete_all"].reads_only
    assert not spec.actions["delete_all"].is_idempotent


def test_a_document_invalid_against_the_schema_is_reported_at_its_file_and_line(
        tmp_path: Path) -> None:
    text = CONNECTOR.replace('{ echo(text: $text) }"', '{ echo(text: $text) nope }"')
    problems = _problems(tmp_path, text)
    assert len(problems) == 1
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "nope" in s)
    assert problems[0] == (f"{tmp_path / 'gh.yaml'}:{line} at actions.echo.graphql.document: "
                           "Cannot query field 'nope' on type 'Query' (line 1, column 48 of "
                           "the document)")


def test_a_document_that_does_not_parse_says_where_in_the_document(tmp_path: Path) -> None:
    text = CONNECTOR.replace('"query Echo($text: String!) { echo(text: $text) }"',
                             '"query Echo($text: String!) { echo(text: $text) "')
    problems = _problems(tmp_path, text)
    assert any("actions.echo.graphql.document" in p and "GraphQL syntax error: Expected Name, found <EOF> (line 1"
               in p for p in problems), problems


def test_a_subscription_is_refused(tmp_path: Path) -> None:
    text = CONNECTOR.replace('"query Echo($text: String!) { echo(text: $text) }"',
                             '"subscription { echo }"')
    problems = _problems(tmp_path, text)
    assert any("subscriptions are not supported" in p for p in problems), problems


def test_a_kind_contradicting_the_document_is_refused(tmp_path: Path) -> None:
    text = CONNECTOR.replace('graphql: {document: "mutation { deleteAll }"}',
                             'graphql: {document: "mutation { deleteAll }", kind: query}')
    problems = _problems(tmp_path, text)
    assert any("kind is 'query' but the document's operation is a mutation" in p
               for p in problems), problems


def test_several_operations_need_one_named(tmp_path: Path) -> None:
    text = CONNECTOR.replace('graphql: {document: "mutation { deleteAll }"}',
                             'graphql: {document: "query A { echo(text: \\"a\\") } '
                             'query B { echo(text: \\"b\\") }"}')
    problems = _problems(tmp_path, text)
    assert any("holds 2 operations (A, B)" in p for p in problems), problems
    named = text.replace('query B { echo(text: \\"b\\") }"}',
                         'query B { echo(text: \\"b\\") }", operation: B}')
    spec = load_connector_file(write_connector(tmp_path, named))
    assert spec.actions["delete_all"].graphql is not None


def test_a_relay_walk_needs_the_cursor_variable_in_the_document(tmp_path: Path) -> None:
    text = CONNECTOR.replace("query Items($first: Int, $after: String) {",
                             "query Items($first: Int) {").replace(
        "items(first: $first, after: $after)", "items(first: $first)")
    problems = _problems(tmp_path, text)
    assert any("relay pagination sends the cursor in $after" in p for p in problems), problems


def test_an_introspection_json_schema_validates_documents_too(tmp_path: Path) -> None:
    (tmp_path / "schema.json").write_text(json.dumps(
        {"data": introspection_from_schema(SCHEMA)}), encoding="utf-8")
    text = CONNECTOR.replace("schema: schema.graphql", "schema: schema.json")
    spec = load_connector_file(write_connector(tmp_path, text))
    assert len(spec.actions) == 8
    bad = text.replace('{ echo(text: $text) }"', '{ echo(text: $text) nope }"')
    assert any("nope" in p for p in _problems(tmp_path, bad))


def test_a_missing_or_broken_schema_file_is_a_problem_of_the_schema_key(tmp_path: Path) -> None:
    text = CONNECTOR.replace("schema: schema.graphql", "schema: absent.graphql")
    assert any("graphql.schema" in p and "cannot read the schema" in p
               for p in _problems(tmp_path, text))
    (tmp_path / "broken.json").write_text('{"nope": 1}', encoding="utf-8")
    text = CONNECTOR.replace("schema: schema.graphql", "schema: broken.json")
    assert any("not an introspection result" in p for p in _problems(tmp_path, text))


def test_a_schema_is_built_once_per_version_of_its_file(tmp_path: Path) -> None:
    path = tmp_path / "s.graphql"
    path.write_text("type Query { a: Int }", encoding="utf-8")
    first = load_schema(path)
    assert load_schema(path) is first
    path.write_text("type Query { a: Int, b: Int }", encoding="utf-8")
    second = load_schema(path)
    assert second is not first
    assert graphql_sync(second, "{ b }").errors is None


def test_an_unknown_cost_preset_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    text = CONNECTOR.replace("cost: github", "cost: gitlab")
    assert any("unknown cost rule 'gitlab'; use one of github, shopify" in p
               for p in _problems(tmp_path, text))


def test_a_variable_the_operation_needs_must_be_a_required_argument(tmp_path: Path) -> None:
    missing = CONNECTOR.replace(
        "input: {type: object, properties: {text: {type: string}}, required: [text]}",
        "input: {type: object, properties: {}}")
    assert any("variable $text is required by the operation but is not a property" in p
               for p in _problems(tmp_path, missing))
    optional = CONNECTOR.replace(
        "input: {type: object, properties: {text: {type: string}}, required: [text]}",
        "input: {type: object, properties: {text: {type: string}}}")
    assert any("actions.echo.input.required" in p and "list it in input.required" in p
               for p in _problems(tmp_path, optional))
