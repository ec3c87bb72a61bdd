"""OpenAI strict mode over real-world API descriptions, and the encodings that get it there:
a JSON-string argument, a map as key/value pairs and a value of any type are decoded before
the action's own validation, bounded, and refused with a typed error naming the argument."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from patchwire import Patchwire, ToolInvoker
from patchwire.tools import (
    Tool,
    anthropic_problems,
    mcp_problems,
    openai_strict_problems,
    to_anthropic,
    to_mcp,
    to_openai,
)
from tests.support.strict_corpus import corpus_paths, measure
from tests.support.upstream import RecordingUpstream, patchwire_serving

CONNECTOR = """
name: notes
base_url: "{url}"
settings:
  url: {}
actions:
  create_note:
    tool: true
    input:
      type: object
      required: [title]
      properties:
        title: {type: string}
        metadata: {type: object, description: Free-form metadata of the note.}
        labels:
          type: object
          description: Labels by name.
          additionalProperties: {type: string, maxLength: 20}
        value: {description: A value of any type.}
        point: {type: array, prefixItems: [{type: number}, {type: number}]}
    request:
      method: POST
      path: /notes
      body: "{$input}"
"""

SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["title"], "properties": {
        "title": {"type": "string"},
        "metadata": {"type": "object", "description": "Free-form metadata of the note."},
        "labels": {"type": "object", "additionalProperties": {"type": "string",
                                                                "maxLength": 20}},
        "value": {"description": "A value of any type."},
        "point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}]},
    }}

TOOL = "notes_create_note"


def make_tool(schema: dict[str, Any]) -> Tool:
    return Tool(name="notes_create_note", target="notes.create_note", connector="notes",
                connection=None, title="Create note", description="Create a note.",
                input_schema=schema, read_only=False, destructive=False, idempotent=False,
                confirm=False)


@pytest.fixture
def notes() -> RecordingUpstream:
    return RecordingUpstream("/notes")


@pytest.fixture
async def pw(tmp_path: Path, notes: RecordingUpstream) -> AsyncIterator[Patchwire]:
    async with patchwire_serving(tmp_path, notes.app(), CONNECTOR) as opened:
        yield opened


# ------------------------------------------------------------------------ the definitions


def test_free_form_objects_maps_any_values_and_tuples_are_strict_in_an_encoded_form() -> None:
    definition = to_openai(make_tool(SCHEMA))
    assert definition["function"]["strict"] is True
    assert openai_strict_problems(definition) == []
    props = definition["function"]["parameters"]["properties"]
    assert props["metadata"]["type"] == ["string", "null"]
    assert "A JSON object written as a string" in props["metadata"]["description"]
    assert props["labels"]["anyOf"][0]["type"] == "array"
    pair = props["labels"]["anyOf"][0]["items"]
    assert pair["required"] == ["key", "value"]
    assert pair["properties"]["value"]["type"] == "string"
    assert "json" in json.dumps(props["value"]["anyOf"])
    assert props["point"]["type"] == ["string", "null"]
    assert "A JSON array" in props["point"]["description"]


def test_mcp_and_anthropic_definitions_keep_the_real_schema() -> None:
    assert to_mcp(make_tool(SCHEMA))["inputSchema"] == SCHEMA
    assert to_anthropic(make_tool(SCHEMA))["input_schema"] == SCHEMA
    assert mcp_problems(to_mcp(make_tool(SCHEMA))) == []
    assert anthropic_problems(to_anthropic(make_tool(SCHEMA))) == []


# ------------------------------------------------------------------ decoded before the call


async def test_a_json_string_argument_is_decoded_and_validated_before_the_call(
        pw: Patchwire, notes: RecordingUpstream) -> None:
    invoker = ToolInvoker(pw)
    result = await invoker.invoke(TOOL, {
        "title": "Hello", "metadata": '{"color": "red", "tags": ["a", "b"]}',
        "labels": None, "value": None, "point": "[1.5, 2]"}, session_id="s1")
    assert result.status == "ok", result.text
    assert notes.bodies == [{"title": "Hello", "metadata": {"color": "red", "tags": ["a", "b"]},
                             "point": [1.5, 2]}]
    (audited,) = await invoker.tool_calls(session_id="s1")
    assert audited.arguments == {"title": "Hello",
                                 "metadata": {"color": "red", "tags": ["a", "b"]},
                                 "point": [1.5, 2]}


async def test_a_map_given_as_pairs_reaches_the_upstream_as_an_object(
        pw: Patchwire, notes: RecordingUpstream) -> None:
    result = await ToolInvoker(pw).invoke(TOOL, {
        "title": "Hi", "metadata": None, "value": None, "point": None,
        "labels": [{"key": "team", "value": "core"}, {"key": "tier", "value": "gold"}]})
    assert result.status == "ok", result.text
    assert notes.bodies == [{"title": "Hi", "labels": {"team": "core", "tier": "gold"}}]


async def test_a_map_value_is_still_validated_against_the_real_schema(
        pw: Patchwire, notes: RecordingUpstream) -> None:
    result = await ToolInvoker(pw).invoke(TOOL, {
        "title": "Hi", "labels": [{"key": "team", "value": "x" * 21}]})
    assert result.status == "invalid_arguments" and "labels.team" in result.text
    assert notes.bodies == []


async def test_a_key_given_twice_in_pairs_is_refused(
        pw: Patchwire, notes: RecordingUpstream) -> None:
    result = await ToolInvoker(pw).invoke(TOOL, {"title": "Hi", "labels": [
        {"key": "team", "value": "a"}, {"key": "team", "value": "b"}]})
    assert result.status == "invalid_arguments" and "labels[1].key" in result.text
    assert "twice" in result.text and notes.bodies == []


async def test_an_object_for_a_value_of_any_type_comes_in_its_json_wrapper(
        pw: Patchwire, notes: RecordingUpstream) -> None:
    invoker = ToolInvoker(pw)
    for title, value in (("a", {"json": '{"n": 1}'}), ("b", "plain text"), ("c", 7)):
        result = await invoker.invoke(TOOL, {"title": title, "value": value})
        assert result.status == "ok", result.text
    assert [b["value"] for b in notes.bodies] == [{"n": 1}, "plain text", 7]


async def test_arguments_written_for_the_real_schema_pass_unchanged(
        pw: Patchwire, notes: RecordingUpstream) -> None:
    arguments = {"title": "MCP", "metadata": {"json": "{}"}, "labels": {"a": "b"},
                 "value": '{"stays": "a string"}', "point": [1, 2]}
    result = await ToolInvoker(pw).invoke(TOOL, arguments)
    assert result.status == "ok", result.text
    assert notes.bodies == [arguments]


# --------------------------------------------------------------------- the hostile model


@pytest.mark.parametrize(("metadata", "said"), [
    ('{"color": "red",}', "not valid JSON"),
    ('{"color": NaN}', "NaN is not JSON"),
    ('{"a": 1, "a": 2}', "given twice"),
    ('{"__proto__": {"admin": true}}', "'__proto__' is not accepted"),
    ('{"x": {"__proto__": {"polluted": 1}}}', "'__proto__' is not accepted"),
    ("[" * 65 + "]" * 65, "at most 64 levels"),
    ("[" * 200_000, "at most 64 levels"),
    ('{"pad": "' + "x" * 300_000 + '"}', "at most 262144 characters"),
])
async def test_a_bad_json_string_is_a_typed_error_naming_the_argument_and_nothing_is_called(
        pw: Patchwire, notes: RecordingUpstream, metadata: str, said: str) -> None:
    invoker = ToolInvoker(pw)
    result = await invoker.invoke(TOOL, {"title": "x", "metadata": metadata}, session_id="h")
    assert result.status == "invalid_arguments", result.text
    assert "- metadata: must be an object written as JSON" in result.text
    assert said in result.text and "Traceback" not in result.text
    assert len(result.text) < 1000  # the value is never repeated back
    assert notes.bodies == []
    (audited,) = await invoker.tool_calls(session_id="h")
    assert audited.validation_failed


async def test_a_json_wrapper_holding_bad_json_names_where_it_is(
        pw: Patchwire, notes: RecordingUpstream) -> None:
    result = await ToolInvoker(pw).invoke(TOOL, {"title": "x", "value": {"json": "{nope"}})
    assert result.status == "invalid_arguments" and "value.json:" in result.text
    assert notes.bodies == []


async def test_a_decoded_json_string_that_breaks_the_real_schema_is_refused_by_validation(
        pw: Patchwire, notes: RecordingUpstream) -> None:
    result = await ToolInvoker(pw).invoke(TOOL, {"title": "x", "point": '["a", "b", "c"]'})
    assert result.status == "invalid_arguments" and "point" in result.text
    assert notes.bodies == []


async def test_secrets_inside_a_json_string_are_redacted_in_the_audit(
        pw: Patchwire, notes: RecordingUpstream) -> None:
    invoker = ToolInvoker(pw)
    result = await invoker.invoke(TOOL, {"title": "x", "metadata": json.dumps(
        {"api_key": "sk_live_0123456789abcdef", "color": "red"})}, session_id="r")
    assert result.status == "ok", result.text
    (audited,) = await invoker.tool_calls(session_id="r")
    assert "sk_live_0123456789abcdef" not in json.dumps(audited.arguments)
    assert audited.arguments is not None and audited.arguments["metadata"]["color"] == "red"


# ----------------------------------------------------------------------- the real world

#: slow (~30 s: 52 descriptions imported, 7,000 actions exported and checked)
@pytest.mark.slow
def test_at_least_99_percent_of_real_world_actions_export_strict_and_pass_the_checker(
        ) -> None:
    measured = [measure(path) for path in corpus_paths()]
    assert len(measured) >= 40
    actions = sum(m.actions for m in measured)
    strict = sum(m.strict for m in measured)
    problems = [f"{m.name} {p}" for m in measured for p in m.problems]
    assert problems == [], "\n".join(problems[:30])
    assert strict >= 0.99 * actions, (strict, actions, [
        (m.name, m.actions - m.strict) for m in measured if m.strict < m.actions])
    # the encodings only ever add strict tools
    assert all(m.strict >= m.baseline_strict for m in measured)
