"""Each model provider's documented rules for tool definitions, and checkers for them.

The checkers (:func:`openai_strict_problems`, :func:`anthropic_problems`,
:func:`mcp_problems`) are written from the rules below, not by re-running the converters
(:mod:`patchwire.tools._export` and the modules it builds on), so a converter bug shows up as
a checker problem. The converters take the rules' numbers and keyword lists from here.

Shared rules (every format)
    * Tool names match ``^[a-zA-Z0-9_-]{1,64}$`` (OpenAI function names; Anthropic
      ``tools[].name``; the catalog already sanitises names to this).
    * The root is ``{"type": "object"}`` without ``anyOf``/``oneOf``/``allOf``: Anthropic
      rejects them ("input_schema does not support oneOf, allOf, or anyOf at the top level",
      a 400 reported in anthropics/claude-code#5973 and many duplicates), OpenAI requires a
      root object, and MCP hosts forward MCP schemas to those APIs. How an action's input is
      brought there: :mod:`patchwire.tools._root_shape`.

OpenAI (function calling, Structured Outputs "Supported schemas" guide,
https://platform.openai.com/docs/guides/structured-outputs#supported-schemas)
    * Chat Completions: ``{"type": "function", "function": {name, description, parameters,
      strict}}``; Responses API: the same keys flat beside ``"type": "function"``.
    * ``function.description`` is at most 1024 characters (the API answers
      ``string_above_max_length`` past that, e.g. getsentry/sentry-mcp#106); the converter
      cuts longer descriptions (:mod:`patchwire.tools._export`).
    * With ``strict: true``: every object has ``additionalProperties: false`` and lists every
      property in ``required``. Every schema has a ``type`` (or is an ``anyOf``). Only these
      keywords are allowed: type, description, enum, const, anyOf, properties, required,
      additionalProperties, items, pattern, format (one of date-time, time, date, duration,
      email, hostname, ipv4, ipv6, uuid), multipleOf, minimum, maximum, exclusiveMinimum,
      exclusiveMaximum, minItems, maxItems (``$ref`` and ``$defs`` are supported too but never
      emitted). How an action's input is brought there, and what strict mode cannot say:
      :mod:`patchwire.tools._openai_strict`.
    * Limits (same guide): at most 5000 object properties in total, 10 levels of nesting,
      1000 enum values, 120 000 characters of property names, enum and const values, and
      15 000 characters for one string enum of more than 250 values. Nesting is counted
      conservatively: every object or array schema on a path is one level.

Anthropic (Messages API tool use, https://docs.anthropic.com/en/docs/agents-and-tools/tool-use)
    * ``{"name", "description", "input_schema"}``; ``input_schema`` is a JSON Schema object
      with ``type: "object"`` at the root (no top-level combinators, above); other keywords are
      passed through. No documented description limit.

MCP (``Tool`` in the 2025-11-25 specification, ``mcp.types.Tool`` in the SDK)
    * ``{"name", "title", "description", "inputSchema", "annotations": {title, readOnlyHint,
      destructiveHint, idempotentHint, openWorldHint}}``. ``inputSchema`` must have
      ``type: "object"`` at the root. Names follow SEP-986 (1-128 of ``A-Za-z0-9._-``, checked
      with the SDK's ``mcp.shared.tool_name_validation``; its warnings count as problems) and
      the portable rule above. ``openWorldHint`` is true: every action talks to an outside API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import jsonschema_rs
from mcp.shared.tool_name_validation import validate_tool_name
from mcp.types import Tool as McpTool
from pydantic import ValidationError

from patchwire.tools._schema_common import (
    COMPOSITE_TYPES,
    JSON_TYPES,
    json_pointer,
    pointer_token,
    shown_path,
    types_of,
)

__all__ = [
    "OPENAI_DESCRIPTION_MAX",
    "OPENAI_STRICT_FORMATS",
    "OPENAI_STRICT_KEYWORDS",
    "anthropic_problems",
    "mcp_problems",
    "openai_limit_problems",
    "openai_strict_problems",
]

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

OPENAI_DESCRIPTION_MAX = 1024
OPENAI_MAX_NESTING = 10
OPENAI_MAX_PROPERTIES = 5000
OPENAI_MAX_ENUM_VALUES = 1000
OPENAI_MAX_STRING_CHARS = 120_000
OPENAI_LARGE_ENUM = 250
OPENAI_LARGE_ENUM_CHARS = 15_000
OPENAI_STRICT_FORMATS = frozenset({
    "date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid",
})
OPENAI_STRICT_KEYWORDS = frozenset({
    "type", "description", "enum", "const", "anyOf", "properties", "required",
    "additionalProperties", "items", "pattern", "format", "multipleOf", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "$ref", "$defs",
})
_ROOT_COMBINATORS = ("anyOf", "oneOf", "allOf")
_ANTHROPIC_KEYS = frozenset({
    "name", "description", "input_schema", "type", "cache_control", "strict", "input_examples",
})


def _name_problems(name: Any, path: str) -> list[str]:
    if not isinstance(name, str):
        return [f"{path}: the name must be a string"]
    if not NAME_RE.fullmatch(name):
        return [f"{path}: the name {name!r} does not match ^[a-zA-Z0-9_-]{{1,64}}$"]
    return []


def _json_schema_problems(schema: Any, path: str) -> list[str]:
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        where = json_pointer(path, *exc.instance_path)
        return [f"{where}: not a valid JSON Schema (2020-12): {exc.message}"]
    except Exception as exc:  # referencing errors and the like
        return [f"{shown_path(path)}: not a usable JSON Schema: {exc}"]
    return []


def _root_problems(schema: Any, path: str) -> list[str]:
    if not isinstance(schema, dict):
        return [f"{shown_path(path)}: the input schema must be a JSON object"]
    problems = []
    if schema.get("type") != "object":
        problems.append(f"{json_pointer(path, 'type')}: the root must have type \"object\" "
                        f"(found {schema.get('type')!r})")
    problems += [f"{json_pointer(path, k)}: no {k} at the top level of the input schema"
                 for k in _ROOT_COMBINATORS if k in schema]
    return problems + _json_schema_problems(schema, path)


def openai_strict_problems(definition: Mapping[str, Any]) -> list[str]:
    """What OpenAI would refuse in ``definition`` (Chat Completions or Responses form).

    Always checked: ``type: "function"``, the name, the 1024-character description limit, an
    object root without combinators, a valid JSON Schema. When the definition says
    ``strict: true`` also every Structured Outputs rule and limit (module docstring)."""
    problems: list[str] = []
    if definition.get("type") != "function":
        problems.append("/type: must be \"function\"")
    function: Any = definition
    base = ""
    if "function" in definition:
        function, base = definition["function"], "/function"
        if not isinstance(function, Mapping):
            return [*problems, "/function: must be an object"]
    problems += _name_problems(function.get("name"), json_pointer(base, "name"))
    description = function.get("description")
    if description is not None:
        if not isinstance(description, str):
            problems.append(f"{json_pointer(base, 'description')}: must be a string")
        elif len(description) > OPENAI_DESCRIPTION_MAX:
            problems.append(f"{json_pointer(base, 'description')}: {len(description)} characters, "
                            f"over the limit of {OPENAI_DESCRIPTION_MAX}")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        problems.append(f"{json_pointer(base, 'strict')}: must be true or false")
    parameters = function.get("parameters")
    path = json_pointer(base, "parameters")
    problems += _root_problems(parameters, path)
    if strict is True and isinstance(parameters, dict):
        rules = _StrictRules(parameters)
        problems += rules.check(parameters, path)
        for name, sub in rules.defs.items():
            problems += rules.check(sub, json_pointer(path, "$defs", name))
        problems += openai_limit_problems(parameters, path)
    return problems


class _StrictRules:
    def __init__(self, root: dict[str, Any]) -> None:
        defs = root.get("$defs")
        self.defs: dict[str, Any] = defs if isinstance(defs, dict) else {}

    def check(self, node: Any, path: str) -> list[str]:
        if not isinstance(node, dict):
            return [f"{shown_path(path)}: boolean schemas are not supported in strict mode"]
        problems = [f"{json_pointer(path, k)}: {k!r} is not supported in strict mode"
                    for k in node if k not in OPENAI_STRICT_KEYWORDS]
        if "$ref" in node:
            ref = node["$ref"]
            local = isinstance(ref, str) and (ref == "#" or (
                ref.startswith("#/$defs/") and unquote(ref[8:]).replace("~1", "/")
                .replace("~0", "~") in self.defs))
            if not local:
                problems.append(f"{json_pointer(path, '$ref')}: {ref!r} does not point into $defs")
            return problems
        if "anyOf" in node:
            branches = node["anyOf"]
            if not isinstance(branches, list) or not branches:
                return [*problems, f"{json_pointer(path, 'anyOf')}: must be a non-empty list"]
            for i, branch in enumerate(branches):
                problems += self.check(branch, json_pointer(path, "anyOf", i))
            if "type" not in node:
                return problems
        types = types_of(node)
        if "type" not in node:
            return [*problems, f"{shown_path(path)}: every schema needs a type in strict mode"]
        if not types or any(t not in JSON_TYPES for t in types):
            problems.append(f"{json_pointer(path, 'type')}: unknown type {node['type']!r}")
        if "format" in node and node["format"] not in OPENAI_STRICT_FORMATS:
            problems.append(f"{json_pointer(path, 'format')}: format {node['format']!r} is not "
                            "supported in strict mode")
        if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
            problems.append(f"{json_pointer(path, 'enum')}: must be a non-empty list")
        if "object" in types:
            problems += self.object(node, path)
        if "array" in types:
            items = node.get("items")
            if isinstance(items, dict):
                problems += self.check(items, json_pointer(path, "items"))
            else:
                problems.append(f"{shown_path(path)}: arrays need an items schema in strict mode")
        return problems

    def object(self, node: dict[str, Any], path: str) -> list[str]:
        problems: list[str] = []
        props = node.get("properties", {})
        if not isinstance(props, dict):
            return [f"{json_pointer(path, 'properties')}: must be an object"]
        if node.get("additionalProperties") is not False:
            problems.append(f"{shown_path(path)}: objects must set additionalProperties: false "
                            "in strict mode")
        required = node.get("required", [])
        if not isinstance(required, list):
            return [*problems, f"{json_pointer(path, 'required')}: must be a list"]
        missing = [p for p in props if p not in required]
        if missing:
            problems.append(f"{json_pointer(path, 'required')}: strict mode needs every property "
                            f"listed in required; missing {missing}")
        undeclared = [r for r in required if r not in props]
        if undeclared:
            problems.append(f"{json_pointer(path, 'required')}: names undeclared properties "
                            f"{undeclared}")
        for name, sub in props.items():
            problems += self.check(sub, json_pointer(path, "properties", name))
        return problems


def openai_limit_problems(schema: dict[str, Any], path: str) -> list[str]:
    """OpenAI's documented size limits for strict schemas (module docstring)."""
    counts = {"properties": 0, "enum": 0, "chars": 0, "nesting": 0}
    problems: list[str] = []
    deepest = ""

    def walk(node: Any, where: str, level: int) -> None:
        nonlocal deepest
        if not isinstance(node, dict):
            return
        if COMPOSITE_TYPES & set(types_of(node)):
            level += 1
            if level > counts["nesting"]:
                counts["nesting"], deepest = level, where
        props = node.get("properties")
        if isinstance(props, dict):
            counts["properties"] += len(props)
            counts["chars"] += sum(len(k) for k in props)
            for name, sub in props.items():
                walk(sub, json_pointer(where, "properties", name), level)
        defs = node.get("$defs")
        if isinstance(defs, dict):
            counts["chars"] += sum(len(k) for k in defs)
            for name, sub in defs.items():
                walk(sub, json_pointer(where, "$defs", name), 0)
        enum = node.get("enum")
        if isinstance(enum, list):
            counts["enum"] += len(enum)
            strings = [v for v in enum if isinstance(v, str)]
            counts["chars"] += sum(len(v) for v in strings)
            if len(enum) > OPENAI_LARGE_ENUM and len(strings) == len(enum) and \
                    sum(map(len, strings)) > OPENAI_LARGE_ENUM_CHARS:
                problems.append(f"{json_pointer(where, 'enum')}: a string enum of more than "
                                f"{OPENAI_LARGE_ENUM} values may hold at most "
                                f"{OPENAI_LARGE_ENUM_CHARS} characters")
        if isinstance(node.get("const"), str):
            counts["chars"] += len(node["const"])
        if isinstance(node.get("items"), dict):
            walk(node["items"], json_pointer(where, "items"), level)
        for i, branch in enumerate(node.get("anyOf") or []):
            walk(branch, json_pointer(where, "anyOf", i), level)

    walk(schema, path, 0)
    if counts["nesting"] > OPENAI_MAX_NESTING:
        problems.append(f"{shown_path(deepest)}: {counts['nesting']} levels of nesting (objects "
                        f"and arrays), over the limit of {OPENAI_MAX_NESTING}")
    if counts["properties"] > OPENAI_MAX_PROPERTIES:
        problems.append(f"{shown_path(path)}: {counts['properties']} object properties, over the "
                        f"limit of {OPENAI_MAX_PROPERTIES}")
    if counts["enum"] > OPENAI_MAX_ENUM_VALUES:
        problems.append(f"{shown_path(path)}: {counts['enum']} enum values, over the limit of "
                        f"{OPENAI_MAX_ENUM_VALUES}")
    if counts["chars"] > OPENAI_MAX_STRING_CHARS:
        problems.append(f"{shown_path(path)}: {counts['chars']} characters of property names and "
                        f"enum/const values, over the limit of {OPENAI_MAX_STRING_CHARS}")
    return problems


def anthropic_problems(definition: Mapping[str, Any]) -> list[str]:
    """What the Anthropic Messages API would refuse in ``definition`` (a custom tool)."""
    problems = [f"/{pointer_token(k)}: unknown tool field"
                for k in definition if k not in _ANTHROPIC_KEYS]
    if definition.get("type") not in (None, "custom"):
        problems.append("/type: a tool with an input schema has type \"custom\" (or none)")
    problems += _name_problems(definition.get("name"), "/name")
    description = definition.get("description")
    if description is not None and not isinstance(description, str):
        problems.append("/description: must be a string")
    if "input_schema" not in definition:
        return [*problems, "/input_schema: missing"]
    return problems + _root_problems(definition["input_schema"], "/input_schema")


def mcp_problems(definition: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``definition`` as an MCP ``Tool`` (SDK model, SEP-986 names,
    object root, valid JSON Schema, and the portable name rule)."""
    problems: list[str] = []
    try:
        McpTool.model_validate(dict(definition))
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(f"{json_pointer('', *error['loc'])}: {error['msg']}")
    name = definition.get("name")
    if isinstance(name, str):
        result = validate_tool_name(name)
        problems += [f"/name: {warning} (SEP-986)" for warning in result.warnings]
        if not result.warnings and not result.is_valid:  # pragma: no cover - always warns
            problems.append("/name: not a valid MCP tool name (SEP-986)")
    problems += _name_problems(name, "/name")
    annotations = definition.get("annotations")
    if annotations is not None and not isinstance(annotations, Mapping):
        problems.append("/annotations: must be an object")
    schema = definition.get("inputSchema")
    if not isinstance(schema, dict):
        return [*problems, "/inputSchema: missing or not an object"]
    problems += _root_problems(schema, "/inputSchema")
    props = schema.get("properties")
    if props is not None and not (isinstance(props, dict) and all(
            isinstance(v, dict | bool) for v in props.values())):
        problems.append("/inputSchema/properties: must map names to schemas")
    required = schema.get("required")
    if required is not None and not (isinstance(required, list)
                                     and all(isinstance(r, str) for r in required)):
        problems.append("/inputSchema/required: must be a list of names")
    return list(dict.fromkeys(problems))
