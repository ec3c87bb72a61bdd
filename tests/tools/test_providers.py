"""Provider tool schemas (patchwire.tools): converters, rule checkers, nulls."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema_rs
import pytest
from mcp.types import Tool as McpTool

from patchwire.connectors import ConnectorRegistry
from patchwire.tools import (
    StrictModeUnsupported,
    Tool,
    ToolCatalog,
    anthropic_problems,
    drop_strict_nulls,
    export_tools,
    inline_refs,
    mcp_problems,
    openai_strict_problems,
    openai_strict_schema,
    to_anthropic,
    to_mcp,
    to_openai,
)
from patchwire.tools._provider_rules import OPENAI_DESCRIPTION_MAX

CHECKERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "openai": openai_strict_problems,
    "openai-responses": openai_strict_problems,
    "anthropic": anthropic_problems,
    "mcp": mcp_problems,
}


def make_tool(schema: Mapping[str, Any], *, name: str = "demo_tool",
              description: str = "Do the demo thing.") -> Tool:
    return Tool(name=name, target="demo.tool", connector="demo", connection=None,
                title="Demo tool", description=description, input_schema=schema,
                read_only=False, destructive=True, idempotent=False, confirm=True)


def builtin_catalog() -> ToolCatalog:
    return ToolCatalog.build(ConnectorRegistry.load(), every_action=True)


BUILTIN_NAMES = builtin_catalog().names()


def strict_params(schema: Mapping[str, Any]) -> dict[str, Any]:
    definition = to_openai(make_tool(schema))
    assert definition["function"]["strict"] is True, definition
    assert openai_strict_problems(definition) == []
    params: dict[str, Any] = definition["function"]["parameters"]
    return params


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema object in ``node`` with its path (properties, items, anyOf)."""
    if not isinstance(node, dict):
        return []
    out = [(path, node)]
    for name, sub in (node.get("properties") or {}).items():
        out += walk(sub, f"{path}/properties/{name}")
    if isinstance(node.get("items"), dict):
        out += walk(node["items"], f"{path}/items")
    for i, sub in enumerate(node.get("anyOf") or []):
        out += walk(sub, f"{path}/anyOf/{i}")
    return out


# ----------------------------------------------------------------------------- inline_refs


def test_inline_refs_inlines_nested_references_and_removes_defs() -> None:
    schema = {
        "type": "object",
        "properties": {"customer": {"$ref": "#/$defs/customer"}},
        "$defs": {
            "customer": {"type": "object", "properties": {"address": {"$ref": "#/$defs/address"}}},
            "address": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    out = inline_refs(schema)
    assert "$defs" not in out
    assert "$ref" not in json.dumps(out)
    assert out["properties"]["customer"]["properties"]["address"]["properties"]["city"] == {
        "type": "string"}
    assert "$defs" in schema  # the input is not modified


def test_inline_refs_follows_definitions_and_json_pointer_escapes() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/definitions/a~1b"},
            "b": {"$ref": "#/$defs/til~0de"},
            "c": {"$ref": "#/$defs/per%25cent"},
            "d": {"$ref": "#/properties/a"},
        },
        "definitions": {"a/b": {"type": "integer"}},
        "$defs": {"til~de": {"type": "boolean"}, "per%cent": {"type": "number"}},
    }
    out = inline_refs(schema)
    assert out["properties"] == {"a": {"type": "integer"}, "b": {"type": "boolean"},
                                 "c": {"type": "number"}, "d": {"type": "integer"}}
    assert "definitions" not in out and "$defs" not in out


def test_inline_refs_keeps_sibling_keywords_beside_a_ref() -> None:
    schema = {
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/address", "description": "Where they live"},
            "short": {"$ref": "#/$defs/code", "maxLength": 3},
            "clash": {"$ref": "#/$defs/code", "minLength": 5},
        },
        "$defs": {
            "address": {"type": "string", "description": "A postal address"},
            "code": {"type": "string", "minLength": 2},
        },
    }
    props = inline_refs(schema)["properties"]
    assert props["home"] == {"type": "string", "description": "Where they live"}
    assert props["short"] == {"type": "string", "minLength": 2, "maxLength": 3}
    # Both minLength keywords apply (2020-12), so they are joined, not overwritten.
    assert props["clash"] == {"allOf": [{"type": "string", "minLength": 2}, {"minLength": 5}]}
    validator = jsonschema_rs.Draft202012Validator(props["clash"])
    assert not validator.is_valid("abc") and validator.is_valid("abcde")


def test_inline_refs_expands_recursion_to_a_bounded_depth_then_stands_in() -> None:
    schema = {
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/node"}},
        "required": ["root"],
        "$defs": {"node": {
            "type": "object",
            "properties": {"label": {"type": "string"},
                           "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            "required": ["label"],
        }},
    }
    out = inline_refs(schema, max_depth=2)
    level1 = out["properties"]["root"]
    level2 = level1["properties"]["children"]["items"]
    stand_in = level2["properties"]["children"]["items"]
    assert level2["properties"]["label"] == {"type": "string"}
    assert stand_in["type"] == "object"
    assert stand_in["additionalProperties"] is False and stand_in["required"] == []
    assert "recursive" in stand_in["description"] and "node" in stand_in["description"]
    assert "$ref" not in json.dumps(out)
    jsonschema_rs.meta.validate(out)


def test_recursive_schema_becomes_a_strict_schema_every_checker_accepts() -> None:
    schema = {
        "type": "object",
        "properties": {"tree": {"$ref": "#"}, "name": {"type": "string"}},
    }
    tool = make_tool(schema)
    for fmt, check in CHECKERS.items():
        assert check(export_tools([tool], fmt)[0]) == [], fmt  # type: ignore[arg-type]
    params = strict_params(schema)
    depth = 0
    node = wrapper = params
    while "tree" in node.get("properties", {}):
        wrapper = node["properties"]["tree"]  # optional: anyOf [object, null]
        node = wrapper["anyOf"][0]
        depth += 1
    assert depth == 4  # three expansions of the reference, then the stand-in
    assert "cut off" in wrapper["description"] and node["properties"] == {}


def test_inline_refs_does_not_take_a_property_named_ref_for_a_reference() -> None:
    schema = {"type": "object", "properties": {"$ref": {"type": "string"},
                                               "$defs": {"type": "integer"}}}
    assert inline_refs(schema) == schema


def test_inline_refs_refuses_references_it_cannot_resolve() -> None:
    with pytest.raises(ValueError, match="non-local"):
        inline_refs({"type": "object", "properties": {"a": {"$ref": "https://x.test/s.json"}}})
    with pytest.raises(ValueError, match="points nowhere"):
        inline_refs({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}})


# ----------------------------------------------------------------------------- OpenAI strict


def test_strict_mode_makes_optional_properties_nullable_and_lists_every_property() -> None:
    params = strict_params({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "note": {"type": "string"},
            "count": {"type": "integer"},
            "level": {"type": "string", "enum": ["low", "high"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["id"],
    })
    props = params["properties"]
    assert params["required"] == ["id", "note", "count", "level", "tags"]
    assert props["id"] == {"type": "string"}
    assert props["note"] == {"type": ["string", "null"]}
    assert props["count"] == {"type": ["integer", "null"]}
    assert props["level"] == {"anyOf": [{"type": "string", "enum": ["low", "high"]},
                                        {"type": "null"}]}
    assert props["tags"] == {"anyOf": [{"type": "array", "items": {"type": "string"}},
                                       {"type": "null"}]}


def test_strict_mode_closes_every_object_including_nested_ones_and_array_items() -> None:
    params = strict_params({
        "type": "object",
        "properties": {
            "order": {"type": "object", "properties": {
                "lines": {"type": "array", "items": {
                    "type": "object", "properties": {"sku": {"type": "string"},
                                                     "qty": {"type": "integer"}},
                    "required": ["sku"]}},
            }, "required": ["lines"]},
        },
        "required": ["order"],
    })
    objects = [(path, node) for path, node in walk(params) if node.get("type") == "object"]
    assert [path for path, _ in objects] == ["", "/properties/order",
                                             "/properties/order/properties/lines/items"]
    for _path, node in objects:
        assert node["additionalProperties"] is False
        assert node["required"] == list(node["properties"])
    line = objects[2][1]
    assert line["properties"]["qty"] == {"type": ["integer", "null"]}


def test_strict_mode_moves_unsupported_keywords_into_the_description() -> None:
    params = strict_params({
        "type": "object",
        "properties": {
            "topic": {"type": "string", "description": "What it is about",
                      "minLength": 1, "maxLength": 200, "default": "general"},
            "site": {"type": "string", "format": "uri"},
            "when": {"type": "string", "format": "date-time"},
            "sid": {"type": "string", "minLength": 34, "maxLength": 34},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True,
                     "minItems": 1},
            "meta": {"type": "object", "properties": {"a": {"type": "string"}},
                     "minProperties": 1, "additionalProperties": False},
        },
        "required": ["topic", "site", "when", "tags", "meta", "sid"],
    })
    props = params["properties"]
    assert props["topic"] == {
        "type": "string",
        "description": "What it is about. Constraints: at least 1 character; "
                       "at most 200 characters; default \"general\".",
    }
    assert props["site"] == {"type": "string", "description": "Constraints: format uri."}
    assert props["when"] == {"type": "string", "format": "date-time"}
    assert props["sid"] == {"type": "string",
                            "description": "Constraints: exactly 34 characters."}
    assert props["tags"]["minItems"] == 1 and "uniqueItems" not in props["tags"]
    assert "items must be unique" in props["tags"]["description"]
    assert "at least 1 key." in props["meta"]["description"]


def test_strict_mode_turns_one_of_into_any_of_with_strict_branches() -> None:
    params = strict_params({
        "type": "object",
        "properties": {"target": {"description": "Who gets it", "oneOf": [
            {"type": "integer", "minimum": 1},
            {"type": "object", "properties": {"email": {"type": "string", "format": "email"},
                                              "name": {"type": "string", "minLength": 1}},
             "required": ["email"]},
        ]}},
        "required": ["target"],
    })
    target = params["properties"]["target"]
    assert "oneOf" not in target and target["description"] == "Who gets it"
    integer, person = target["anyOf"]
    assert integer == {"type": "integer", "minimum": 1}
    assert person["additionalProperties"] is False
    assert person["required"] == ["email", "name"]
    assert person["properties"]["name"]["type"] == ["string", "null"]


def test_strict_mode_distributes_an_objects_variants_into_whole_objects() -> None:
    params = strict_params({
        "type": "object",
        "properties": {"body": {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["queued", "completed"]},
                           "conclusion": {"type": "string"}},
            "anyOf": [
                {"properties": {"status": {"enum": ["completed"]}}, "required": ["conclusion"]},
                {"properties": {"status": {"enum": ["queued"]}}},
            ],
        }},
        "required": ["body"],
    })
    completed, queued = params["properties"]["body"]["anyOf"]
    assert completed["properties"]["status"]["anyOf"][0]["enum"] == ["completed"]
    assert completed["properties"]["conclusion"] == {"type": "string"}
    assert queued["properties"]["status"]["anyOf"][0]["enum"] == ["queued"]
    assert queued["properties"]["conclusion"] == {"type": ["string", "null"]}


def test_required_only_variants_become_a_sentence_in_strict_mode_and_at_the_root() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "body": {"type": "object",
                     "properties": {"state": {"type": "string"}, "assignee": {"type": "string"}},
                     "anyOf": [{"required": ["state"]}, {"required": ["assignee"]}]},
            "owner": {"type": "string"},
            "repo": {"type": "string"},
        },
        "oneOf": [{"required": ["id"]}, {"required": ["owner", "repo"]}],
    }
    params = strict_params(schema)
    assert "Give exactly one of: `id`; `owner` + `repo`." in params["description"]
    body = params["properties"]["body"]  # optional, so an anyOf with null around the object
    assert "Give at least one of: `state`; `assignee`" in body["description"]
    assert "anyOf" not in body["anyOf"][0]
    for fmt in ("anthropic", "mcp"):
        definition = export_tools([make_tool(schema)], fmt)[0]
        root = definition.get("input_schema") or definition["inputSchema"]
        assert "oneOf" not in root
        assert "Give exactly one of" in root["description"]


def test_root_variants_with_their_own_properties_are_merged_for_every_provider() -> None:
    schema = {
        "type": "object",
        "oneOf": [
            {"title": "By id", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
            {"title": "By name", "properties": {"name": {"type": "string"}},
             "required": ["name"]},
        ],
    }
    tool = make_tool(schema)
    anthropic = to_anthropic(tool)
    assert anthropic_problems(anthropic) == []
    root = anthropic["input_schema"]
    assert set(root["properties"]) == {"id", "name"} and "required" not in root
    assert "exactly one of these variants" in root["description"]
    assert "By id (`id` (required))" in root["description"]
    assert openai_strict_problems(to_openai(tool)) == []


def test_strict_mode_merges_all_of() -> None:
    params = strict_params({
        "type": "object",
        "properties": {"rule": {"allOf": [
            {"type": "object", "properties": {"ref": {"type": "string"}}, "required": ["ref"]},
            {"type": "object", "properties": {"repo": {"type": "string"}}},
        ]}, "size": {"allOf": [{"type": "integer"}, {"type": "number", "minimum": 0},
                               {"minimum": 5, "maximum": 9}]}},
        "required": ["rule", "size"],
    })
    rule = params["properties"]["rule"]
    assert rule["properties"] == {"ref": {"type": "string"},
                                  "repo": {"type": ["string", "null"]}}
    assert params["properties"]["size"] == {"type": "integer", "minimum": 5, "maximum": 9}


def test_optional_properties_that_accept_null_say_null_means_unset() -> None:
    params = strict_params({"type": "object",
                            "properties": {"milestone": {"type": ["integer", "null"]}}})
    assert params["properties"]["milestone"] == {
        "type": ["integer", "null"], "description": "null means: leave it unset."}


@pytest.mark.parametrize(("schema", "reason"), [
    ({"type": "object", "properties": {"meta": {"type": "object"}}},
     "/properties/meta: a free-form object"),
    ({"type": "object", "properties": {"labels": {
        "type": "object", "additionalProperties": {"type": "string"}}}},
     "/properties/labels: a map"),
    ({"type": "object", "properties": {"value": {"description": "anything"}}},
     "/properties/value: a schema without a type"),
    ({"type": "object", "properties": {"pair": {"type": "array", "prefixItems": [
        {"type": "string"}, {"type": "integer"}]}}},
     "/properties/pair: tuple arrays"),
])
def test_what_strict_mode_cannot_say_is_encoded_and_a_reason_without_the_encodings(
        schema: dict[str, Any], reason: str) -> None:
    with pytest.raises(StrictModeUnsupported) as caught:
        openai_strict_schema(schema, encode=False)
    assert any(r.startswith(reason) for r in caught.value.reasons), caught.value.reasons
    definition = to_openai(make_tool(schema))
    assert definition["function"]["strict"] is True
    assert openai_strict_problems(definition) == []


def test_a_json_string_beside_plain_strings_falls_back_to_non_strict() -> None:
    schema = {"type": "object", "properties": {"meta": {"anyOf": [
        {"type": "string"}, {"type": "object"}]}}}
    with pytest.raises(StrictModeUnsupported, match="told apart"):
        openai_strict_schema(schema)
    definition = to_openai(make_tool(schema))
    assert definition["function"]["strict"] is False
    assert definition["function"]["parameters"] == schema
    assert openai_strict_problems(definition) == []
    forced = {**definition, "function": {**definition["function"], "strict": True}}
    assert openai_strict_problems(forced) != []


def test_schemas_past_openai_limits_are_folded_to_stay_strict() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(11):
        deep = {"type": "object", "properties": {"x": deep}, "required": ["x"]}
    with pytest.raises(StrictModeUnsupported, match="11 levels of nesting"):
        openai_strict_schema(deep, encode=False)
    assert strict_params(deep)

    wide = {"type": "object", "properties": {
        f"p{i}": {"type": "object", "properties": {f"q{j}": {"type": "integer"}
                                                   for j in range(100)}}
        for i in range(50)}}
    with pytest.raises(StrictModeUnsupported, match="5050 object properties"):
        openai_strict_schema(wide, encode=False)
    folded = strict_params(wide)
    assert folded["properties"]["p0"]["type"] == ["string", "null"]
    assert "A JSON object written as a string, with the keys `q0` (integer)" in folded[
        "properties"]["p0"]["description"]

    many = {"type": "object", "properties": {"code": {
        "type": "string", "enum": [f"value-number-{i:04d}-{'x' * 40}" for i in range(300)]}}}
    with pytest.raises(StrictModeUnsupported, match="more than 250 values"):
        openai_strict_schema(many, encode=False)
    assert "one of 300 values" in strict_params(many)["properties"]["code"]["description"]


def test_openai_descriptions_are_cut_to_the_provider_limit_at_a_sentence() -> None:
    text = "First sentence here. " * 100
    definition = to_openai(make_tool({"type": "object", "properties": {}}, description=text))
    description = definition["function"]["description"]
    assert len(description) <= OPENAI_DESCRIPTION_MAX
    assert description.endswith("here.…")
    assert openai_strict_problems(definition) == []
    assert to_anthropic(make_tool({"type": "object"}, description=text))["description"] == text


def test_openai_chat_and_responses_shapes() -> None:
    tool = make_tool({"type": "object", "properties": {"a": {"type": "string"}}})
    chat = to_openai(tool)
    assert set(chat) == {"type", "function"}
    assert set(chat["function"]) == {"name", "description", "parameters", "strict"}
    flat = to_openai(tool, style="responses")
    assert flat == {"type": "function", **chat["function"]}
    loose = to_openai(tool, strict=False)
    assert loose["function"]["strict"] is False
    assert loose["function"]["parameters"] == {"type": "object",
                                               "properties": {"a": {"type": "string"}}}


def test_mcp_definition_validates_with_the_sdk_tool_model() -> None:
    tool = make_tool({"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}},
                      "$defs": {"a": {"type": "string"}}})
    definition = to_mcp(tool)
    model = McpTool.model_validate(definition)
    assert model.name == "demo_tool" and model.title == "Demo tool"
    assert model.input_schema == {"type": "object", "properties": {"a": {"type": "string"}}}
    assert model.annotations is not None
    assert model.annotations.destructive_hint is True
    assert model.annotations.read_only_hint is False
    assert model.annotations.idempotent_hint is False
    assert model.annotations.open_world_hint is True


def test_export_tools_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown tool format"):
        export_tools(builtin_catalog(), "gemini")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- built-ins


@pytest.mark.parametrize("fmt", list(CHECKERS))
def test_every_builtin_action_passes_the_checker_of_every_format(fmt: str) -> None:
    catalog = builtin_catalog()
    definitions = export_tools(catalog, fmt)  # type: ignore[arg-type]
    assert len(definitions) == len(catalog) >= 20
    problems = {d.get("name") or d["function"]["name"]: CHECKERS[fmt](d) for d in definitions}
    assert {k: v for k, v in problems.items() if v} == {}
    if fmt.startswith("openai"):
        strict = [d.get("strict", d.get("function", {}).get("strict")) for d in definitions]
        assert all(strict)


# ----------------------------------------------------------------------------- drop_strict_nulls


def unwrap_nullable(strict: dict[str, Any]) -> dict[str, Any]:
    branches = strict.get("anyOf")
    if branches and {"type": "null"} in branches and len(branches) == 2:
        return next(b for b in branches if b != {"type": "null"})
    return strict


def example_value(original: dict[str, Any], strict: dict[str, Any]) -> Any:
    """A value valid for ``original``, nested optional properties filled with null the way
    a strict-mode model fills them."""
    strict = unwrap_nullable(strict)
    if "enum" in original:
        return original["enum"][0]
    kind = original["type"]
    if kind == "object":
        required = original.get("required", [])
        return {name: (None if name not in required
                       else example_value(original["properties"][name], sub))
                for name, sub in strict["properties"].items()}
    if kind == "array":
        item = example_value(original["items"], strict["items"])
        return [item] * max(original.get("minItems", 1), 1)
    if kind == "integer":
        return max(original.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    fmt = original.get("format")
    if fmt == "email":
        return "someone@example.com"
    if fmt == "date":
        return "2025-03-05"
    if fmt == "date-time":
        return "2025-03-05T10:00:00Z"
    text = "x" * max(original.get("minLength", 1), 1)
    if "pattern" in original and not re.search(original["pattern"], text):
        text = original["pattern"].lstrip("^") + text
    return text


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_strict_arguments_validate_against_the_real_schema_after_dropping_nulls(
        name: str) -> None:
    tool = builtin_catalog().get(name)
    original = inline_refs(tool.input_schema)
    strict = to_openai(tool)["function"]["parameters"]
    arguments = example_value(original, strict)
    assert jsonschema_rs.Draft202012Validator(strict).is_valid(arguments), arguments
    real = jsonschema_rs.Draft202012Validator(dict(tool.input_schema))
    cleaned = drop_strict_nulls(tool.input_schema, arguments)
    assert real.is_valid(cleaned), list(real.iter_errors(cleaned))
    assert None not in cleaned.values()
    has_optional = "null" in json.dumps(arguments)
    assert real.is_valid(arguments) is not has_optional  # the nulls really had to go


def test_drop_strict_nulls_reaches_into_nested_objects_and_arrays() -> None:
    schema = {
        "type": "object",
        "properties": {
            "order": {"$ref": "#/$defs/order"},
            "note": {"type": "string"},
        },
        "required": ["order"],
        "$defs": {"order": {"type": "object", "properties": {
            "lines": {"type": "array", "items": {"type": "object", "properties": {
                "sku": {"type": "string"}, "qty": {"type": "integer"}}, "required": ["sku"]}},
            "coupon": {"type": "string"},
        }, "required": ["lines"]}},
    }
    arguments = {"order": {"lines": [{"sku": "a", "qty": None}, {"sku": "b", "qty": 2}],
                           "coupon": None},
                 "note": None}
    assert drop_strict_nulls(schema, arguments) == {
        "order": {"lines": [{"sku": "a"}, {"sku": "b", "qty": 2}]}}
    assert arguments["note"] is None  # the input is left alone


def test_drop_strict_nulls_keeps_a_null_that_a_required_property_allows() -> None:
    schema = {"type": "object",
              "properties": {"assignee": {"type": ["string", "null"]},
                             "label": {"type": ["string", "null"]}},
              "required": ["assignee"]}
    cleaned = drop_strict_nulls(schema, {"assignee": None, "label": None})
    assert cleaned == {"assignee": None}
    assert jsonschema_rs.Draft202012Validator(schema).is_valid(cleaned)


def test_drop_strict_nulls_uses_required_keys_from_all_of_and_every_variant() -> None:
    schema = {"type": "object",
              "allOf": [{"required": ["a"]}],
              "anyOf": [{"required": ["b", "c"]}, {"required": ["b"]}],
              "properties": {"a": {}, "b": {}, "c": {}, "d": {}}}
    assert drop_strict_nulls(schema, {"a": None, "b": None, "c": None, "d": None}) == {
        "a": None, "b": None}


# ----------------------------------------------------------------------------- checkers


def good_openai() -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": "get_order", "description": "Get an order.", "strict": True,
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}},
                       "required": ["id"], "additionalProperties": False}}}


def with_parameters(params: dict[str, Any]) -> dict[str, Any]:
    definition = good_openai()
    definition["function"]["parameters"] = params
    return definition


def test_openai_checker_accepts_a_correct_strict_definition() -> None:
    assert openai_strict_problems(good_openai()) == []
    flat = {"type": "function", **good_openai()["function"]}
    assert openai_strict_problems(flat) == []


@pytest.mark.parametrize(("params", "expected"), [
    ({"type": "object", "properties": {"id": {"type": "string", "minLength": 1}},
      "required": ["id"], "additionalProperties": False},
     "/function/parameters/properties/id/minLength: 'minLength' is not supported"),
    ({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
     "/function/parameters: objects must set additionalProperties: false"),
    ({"type": "object", "properties": {"id": {"type": "string"}, "n": {"type": "integer"}},
      "required": ["id"], "additionalProperties": False},
     "/function/parameters/required: strict mode needs every property listed in required; "
     "missing ['n']"),
    ({"type": "object", "properties": {"o": {"type": "object", "properties": {}}},
      "required": ["o"], "additionalProperties": False},
     "/function/parameters/properties/o: objects must set additionalProperties: false"),
    ({"type": "object", "properties": {"l": {"type": "array"}}, "required": ["l"],
      "additionalProperties": False},
     "/function/parameters/properties/l: arrays need an items schema"),
    ({"type": "object", "properties": {"u": {"type": "string", "format": "uri"}},
      "required": ["u"], "additionalProperties": False},
     "/function/parameters/properties/u/format: format 'uri' is not supported"),
    ({"type": "object", "properties": {"v": {"description": "any"}}, "required": ["v"],
      "additionalProperties": False},
     "/function/parameters/properties/v: every schema needs a type"),
    ({"type": "object", "properties": {"v": {"allOf": [{"type": "string"}]}},
      "required": ["v"], "additionalProperties": False},
     "/function/parameters/properties/v/allOf: 'allOf' is not supported"),
    ({"anyOf": [{"type": "object"}]},
     "/function/parameters/anyOf: no anyOf at the top level"),
    ({"type": "array", "items": {"type": "string"}},
     "/function/parameters/type: the root must have type \"object\""),
    ({"type": "object", "properties": {"x": {"type": "strin"}}, "required": ["x"],
      "additionalProperties": False},
     "/function/parameters/properties/x/type: not a valid JSON Schema"),
])
def test_openai_checker_catches_strict_mode_violations(params: dict[str, Any],
                                                        expected: str) -> None:
    problems = openai_strict_problems(with_parameters(params))
    assert any(p.startswith(expected) for p in problems), problems


def test_openai_checker_applies_strict_rules_only_to_strict_definitions() -> None:
    definition = with_parameters({"type": "object",
                                  "properties": {"id": {"type": "string", "minLength": 1}}})
    definition["function"]["strict"] = False
    assert openai_strict_problems(definition) == []


def test_openai_checker_catches_bad_names_long_descriptions_and_limits() -> None:
    definition = good_openai()
    definition["function"]["name"] = "get order!"
    definition["function"]["description"] = "x" * 1025
    problems = openai_strict_problems(definition)
    assert any(p.startswith("/function/name: the name 'get order!' does not match")
               for p in problems)
    assert "/function/description: 1025 characters, over the limit of 1024" in problems
    assert openai_strict_problems({**good_openai(), "type": "tool"})[0] == (
        "/type: must be \"function\"")
    too_long = good_openai()
    too_long["function"]["name"] = "n" * 65
    assert openai_strict_problems(too_long)
    enums = with_parameters({
        "type": "object", "additionalProperties": False, "required": ["a", "b"],
        "properties": {k: {"type": "string", "enum": [f"{k}{i}" for i in range(600)]}
                       for k in ("a", "b")}})
    assert any("1200 enum values, over the limit of 1000" in p
               for p in openai_strict_problems(enums))


def test_anthropic_checker_catches_violations() -> None:
    good = {"name": "get_order", "description": "Get it.",
            "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}}
    assert anthropic_problems(good) == []
    assert anthropic_problems({**good, "name": "get.order"}) == [
        "/name: the name 'get.order' does not match ^[a-zA-Z0-9_-]{1,64}$"]
    root_any_of = {**good, "input_schema": {"type": "object", "anyOf": [{"required": ["id"]}]}}
    assert anthropic_problems(root_any_of) == [
        "/input_schema/anyOf: no anyOf at the top level of the input schema"]
    not_object = anthropic_problems({**good, "input_schema": {"type": "string"}})
    assert not_object[0].startswith("/input_schema/type: the root must have type \"object\"")
    assert anthropic_problems({**good, "parameters": {}}) == ["/parameters: unknown tool field"]
    broken = anthropic_problems({**good, "input_schema": {
        "type": "object", "properties": {"id": {"minLength": -1}}}})
    assert broken[0].startswith("/input_schema/properties/id/minLength: not a valid JSON Schema")
    assert anthropic_problems({"name": "x"}) == ["/input_schema: missing"]


def test_mcp_checker_catches_violations() -> None:
    good = to_mcp(make_tool({"type": "object", "properties": {}}))
    assert mcp_problems(good) == []
    spaced = mcp_problems({**good, "name": "get order"})
    assert any(p.startswith("/name: Tool name contains spaces") for p in spaced)
    assert any(p.startswith("/name: the name 'get order' does not match") for p in spaced)
    dotted = mcp_problems({**good, "name": "shop.get_order"})
    assert dotted == ["/name: the name 'shop.get_order' does not match ^[a-zA-Z0-9_-]{1,64}$"]
    missing = mcp_problems({k: v for k, v in good.items() if k != "inputSchema"})
    assert "/inputSchema: Field required" in missing
    hints = mcp_problems({**good, "annotations": {"readOnlyHint": [1]}})
    assert any(p.startswith("/annotations/readOnlyHint:") for p in hints), hints
    non_object = mcp_problems({**good, "inputSchema": {"type": "array"}})
    assert non_object[0].startswith("/inputSchema/type: the root must have type \"object\"")
    bad_required = mcp_problems({**good, "inputSchema": {"type": "object", "required": [1]}})
    assert "/inputSchema/required: must be a list of names" in bad_required
