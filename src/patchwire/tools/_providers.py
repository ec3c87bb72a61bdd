"""Tool definitions for each model provider, and checkers for each provider's rules.

An action's input is JSON Schema 2020-12 (object at the root, maybe with local ``$ref``s into
``$defs``, maybe recursive). Providers accept less than that; this module turns a
:class:`~patchwire.tools.Tool` into each provider's tool definition and checks definitions
against each provider's documented rules. The checkers are written from the rules below, not
by re-running the converters, so a converter bug shows up as a checker problem.

Shared rules (every format)
    * Tool names match ``^[a-zA-Z0-9_-]{1,64}$`` (OpenAI function names; Anthropic
      ``tools[].name``; the catalog already sanitises names to this).
    * Local ``$ref``s are inlined (:func:`inline_refs`): a recursive reference is expanded
      :data:`RECURSION_DEPTH` times on a path, then replaced by a stand-in (an empty closed
      object, or an empty list of them) whose ``description`` says the structure is cut off.
      The stand-in satisfies every provider below, OpenAI strict mode included.
    * The root is ``{"type": "object"}`` without ``anyOf``/``oneOf``/``allOf``: Anthropic
      rejects them ("input_schema does not support oneOf, allOf, or anyOf at the top level",
      a 400 reported in anthropics/claude-code#5973 and many duplicates), OpenAI requires a
      root object, and MCP hosts forward MCP schemas to those APIs. A root ``allOf`` is merged
      into the root; root ``anyOf``/``oneOf`` branches that only name required keys become a
      sentence of the description ("Give at least one of: ..."); other branches have their
      properties merged into the root (all optional) and are listed in the description.

OpenAI (function calling, Structured Outputs "Supported schemas" guide,
https://platform.openai.com/docs/guides/structured-outputs#supported-schemas)
    * Chat Completions: ``{"type": "function", "function": {name, description, parameters,
      strict}}``; Responses API: the same keys flat beside ``"type": "function"``.
    * ``function.description`` is at most 1024 characters (the API answers
      ``string_above_max_length`` past that, e.g. getsentry/sentry-mcp#106); longer
      descriptions are cut at a paragraph or sentence boundary and end in "…".
    * With ``strict: true``: every object has ``additionalProperties: false`` and lists every
      property in ``required``; an optional property becomes nullable (``"type": [T, "null"]``
      for plain scalars, ``anyOf: [..., {"type": "null"}]`` otherwise) and
      :func:`drop_strict_nulls` removes those nulls again before a call. Every schema has a
      ``type`` (or is an ``anyOf``). Only these keywords are kept: type, description, enum,
      const, anyOf, properties, required, additionalProperties, items, pattern, format (one of
      date-time, time, date, duration, email, hostname, ipv4, ipv6, uuid), multipleOf,
      minimum, maximum, exclusiveMinimum, exclusiveMaximum, minItems, maxItems (``$ref`` and
      ``$defs`` are supported too but never emitted). Everything else — minLength, maxLength,
      minProperties, maxProperties, patternProperties, propertyNames, unevaluatedProperties,
      unevaluatedItems, contains, minContains, maxContains, uniqueItems, allOf, not,
      if/then/else, dependentRequired, dependentSchemas, default, examples, other formats... —
      is removed and said in the schema's description ("Constraints: at most 200
      characters; default 30.") so the model still learns it; the action's own validation
      still enforces it. ``allOf`` is merged when the parts agree; ``oneOf`` becomes ``anyOf``;
      ``anyOf``/``oneOf`` beside an object's own keywords are distributed into whole variants.
    * Limits (same guide): at most 5000 object properties in total, 10 levels of nesting,
      1000 enum values, 120 000 characters of property names, enum and const values, and
      15 000 characters for one string enum of more than 250 values. Nesting is counted
      conservatively: every object or array schema on a path is one level.
    * What strict mode cannot say: free-form objects (no declared properties, or
      ``additionalProperties`` with a schema: maps), schemas with no type (any value), tuple
      arrays, boolean schemas, and anything past the limits. Such a tool is emitted with
      ``strict: false`` and the non-strict schema (refs inlined, root flattened) rather than
      with a schema that would refuse real arguments; :func:`openai_strict_schema` raises
      :class:`StrictModeUnsupported` naming each reason with its JSON path.
    * Strict mode cannot tell "absent" from ``null``: a null for an optional property is taken
      as "not given" (such properties that accept null say so in their description).

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

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import unquote

import jsonschema_rs
from mcp.shared.tool_name_validation import validate_tool_name
from mcp.types import Tool as McpTool
from pydantic import ValidationError

from patchwire.tools._catalog import Tool, ToolCatalog

__all__ = [
    "OPENAI_DESCRIPTION_MAX",
    "OPENAI_STRICT_FORMATS",
    "OPENAI_STRICT_KEYWORDS",
    "RECURSION_DEPTH",
    "ExportFormat",
    "StrictModeUnsupported",
    "anthropic_problems",
    "drop_strict_nulls",
    "export_tools",
    "inline_refs",
    "mcp_problems",
    "openai_strict_problems",
    "openai_strict_schema",
    "to_anthropic",
    "to_mcp",
    "to_openai",
]

ExportFormat = Literal["openai", "openai-responses", "anthropic", "mcp"]

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
RECURSION_DEPTH = 3
"""How many times one recursive ``$ref`` is expanded on a path before the stand-in."""

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
_KEPT_IN_STRICT = frozenset({
    "pattern", "multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minItems", "maxItems",
})
_SILENTLY_DROPPED = frozenset({
    "$schema", "$id", "$anchor", "$comment", "$dynamicAnchor", "readOnly", "writeOnly",
    "nullable", "discriminator", "xml", "externalDocs",
})
_ANNOTATIONS = frozenset({
    "description", "title", "default", "examples", "example", "deprecated", "readOnly",
    "writeOnly", "$comment",
})
_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
_COMPOSITE = frozenset({"object", "array"})
_ROOT_COMBINATORS = ("anyOf", "oneOf", "allOf")
_ANTHROPIC_KEYS = frozenset({
    "name", "description", "input_schema", "type", "cache_control", "strict", "input_examples",
})

# Where subschemas live, by keyword (2020-12 plus the draft-07 spellings OpenAPI imports use).
_ONE_SCHEMA = frozenset({
    "items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema",
})
_SCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs", "definitions",
                         "dependentSchemas"})
_SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})


class StrictModeUnsupported(ValueError):
    """A schema OpenAI strict mode cannot express faithfully; ``reasons`` name JSON paths."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("strict mode cannot express this schema: " + "; ".join(self.reasons))


# --------------------------------------------------------------------------- helpers


def _plain(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (schemas may arrive as read-only mappings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _esc(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _pointer(base: str, *tokens: str | int) -> str:
    return base + "".join("/" + _esc(t) for t in tokens)


def _where(path: str) -> str:
    return path or "/"


def _compact(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _append_sentence(description: str | None, sentence: str) -> str:
    if not description or not description.strip():
        return sentence
    text = description.rstrip()
    if not text.endswith((".", "!", "?", ":")):
        text += "."
    return f"{text} {sentence}"


def _trim(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, at a paragraph or sentence end when one is near."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    for mark in ("\n\n", ". ", "\n"):
        at = cut.rfind(mark)
        if at >= limit // 2:
            cut = cut[: at + (1 if mark == ". " else 0)]
            break
    return cut.rstrip() + "…"


def _types_of(node: Mapping[str, Any]) -> list[str]:
    t = node.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str)]
    return []


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# --------------------------------------------------------------------------- inline_refs


def inline_refs(schema: Mapping[str, Any], *, max_depth: int = RECURSION_DEPTH) -> dict[str, Any]:
    """A copy of ``schema`` with every local ``$ref`` inlined and ``$defs``/``definitions``
    removed.

    References are JSON pointers into the document (``#/$defs/a~1b`` is ``$defs["a/b"]``,
    percent-escapes are decoded, ``#`` is the root). Keywords beside a ``$ref`` are kept
    (2020-12 applies both): they are merged into the target when they agree with it (their
    annotations — description, title, default... — win) and joined with ``allOf`` otherwise.
    A reference met again inside its own expansion is expanded ``max_depth`` times on that
    path, then replaced by a stand-in that describes the cut. A reference that cannot be
    resolved (not local, or pointing nowhere) raises :class:`ValueError`.
    """
    root = _plain(schema)
    out = _Inliner(root, max_depth).schema(root, ())
    if not isinstance(out, dict):  # pragma: no cover - a mapping root stays a mapping
        raise ValueError("the schema's root must be an object")
    return out


class _Inliner:
    def __init__(self, root: Any, max_depth: int) -> None:
        self.root = root
        self.max_depth = max_depth

    def schema(self, node: Any, stack: tuple[str, ...]) -> Any:
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return self.children(node, stack)
        if not ref.startswith("#"):
            raise ValueError(f"cannot inline the non-local $ref {ref!r}")
        target: Any
        if stack.count(ref) >= self.max_depth:
            target = self.stand_in(ref)
        else:
            target = self.schema(self.resolve(ref), (*stack, ref))
        siblings = self.children({k: v for k, v in node.items() if k != "$ref"}, stack)
        return _with_siblings(target, siblings)

    def children(self, node: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("$defs", "definitions"):
                continue
            if key in _ONE_SCHEMA and isinstance(value, dict | bool):
                out[key] = self.schema(value, stack)
            elif key in _ONE_SCHEMA and key == "items" and isinstance(value, list):
                out[key] = [self.schema(v, stack) for v in value]
            elif key in _SCHEMA_MAP and isinstance(value, dict):
                out[key] = {k: self.schema(v, stack) for k, v in value.items()}
            elif key in _SCHEMA_LIST and isinstance(value, list):
                out[key] = [self.schema(v, stack) for v in value]
            elif key == "dependencies" and isinstance(value, dict):
                out[key] = {k: self.schema(v, stack) if isinstance(v, dict | bool) else _plain(v)
                            for k, v in value.items()}
            else:
                out[key] = _plain(value)
        return out

    def resolve(self, ref: str) -> Any:
        fragment = ref[1:]
        node: Any = self.root
        if fragment in ("", "/"):
            return node
        if not fragment.startswith("/"):
            raise ValueError(f"cannot inline the $ref {ref!r}: only JSON-pointer fragments")
        for raw in fragment[1:].split("/"):
            token = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise ValueError(f"the $ref {ref!r} points nowhere")
        return node

    def stand_in(self, ref: str) -> dict[str, Any]:
        target = self.resolve(ref)
        label = ref.rsplit("/", 1)[-1] if "/" in ref else "root"
        label = unquote(label).replace("~1", "/").replace("~0", "~") or "root"
        if isinstance(target, dict) and isinstance(target.get("title"), str):
            label = target["title"]
        cut = (f"The recursive structure {label!r} is cut off here after {self.max_depth} "
               "levels; deeper levels cannot be sent through this tool.")
        empty: dict[str, Any] = {"type": "object", "properties": {}, "required": [],
                                 "additionalProperties": False}
        if isinstance(target, dict) and _types_of(target) == ["array"]:
            return {"type": "array", "items": empty, "maxItems": 0,
                    "description": cut + " Send an empty list."}
        return {**empty, "description": cut + " Send an empty object."}


def _with_siblings(target: Any, siblings: dict[str, Any]) -> Any:
    if not siblings:
        return target
    if target is True or target == {}:
        return siblings
    if not isinstance(target, dict):
        return {"allOf": [target, siblings]}
    merged = dict(target)
    conflict = False
    for key, value in siblings.items():
        if key in _ANNOTATIONS or key not in merged or merged[key] == value:
            merged[key] = value
        else:
            conflict = True
    if not conflict:
        return merged
    notes = {k: v for k, v in siblings.items() if k in _ANNOTATIONS}
    rest = {k: v for k, v in siblings.items() if k not in _ANNOTATIONS}
    return {**notes, "allOf": [target, rest]}


# --------------------------------------------------------------------------- merging


_LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems",
                           "minProperties"})
_UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems",
                           "maxProperties"})


def _meet(x: str, y: str) -> str | None:
    if x == y:
        return x
    return "integer" if {x, y} == {"integer", "number"} else None


def _merge(a: Mapping[str, Any], b: Any) -> dict[str, Any] | None:
    """One schema admitting what both admit (lenient about ``additionalProperties``), or
    ``None`` when they disagree in a way this cannot combine."""
    if b is True or b == {}:
        return dict(a)
    if not isinstance(b, dict):
        return None
    out = dict(a)
    for key, value in b.items():
        if key not in out or out[key] == value:
            out[key] = value
            continue
        if key in _ANNOTATIONS:
            continue  # the first one's annotation stays
        current = out[key]
        if key == "properties" and isinstance(current, dict) and isinstance(value, dict):
            props = dict(current)
            for name, sub in value.items():
                if name in props and props[name] != sub:
                    both = _merge(props[name], sub) if isinstance(props[name], dict) else None
                    if both is None:
                        return None
                    props[name] = both
                else:
                    props[name] = sub
            out[key] = props
        elif key == "required" and isinstance(current, list) and isinstance(value, list):
            out[key] = list(dict.fromkeys([*current, *value]))
        elif key == "type":
            common = list(dict.fromkeys(
                t for x in _types_of(out) for y in _types_of(b) if (t := _meet(x, y))))
            if not common:
                return None
            out[key] = common[0] if len(common) == 1 else common
        elif key == "enum" and isinstance(current, list) and isinstance(value, list):
            common_values = [v for v in current if v in value]
            if not common_values:
                return None
            out[key] = common_values
        elif key == "additionalProperties":
            if current is False or value is False:
                out[key] = False
            elif current is True:
                out[key] = value
            elif value is not True:
                return None
        elif key in _LOWER_BOUNDS and isinstance(current, int | float):
            out[key] = max(current, value)
        elif key in _UPPER_BOUNDS and isinstance(current, int | float):
            out[key] = min(current, value)
        else:
            return None
    return out


def _absorb_all_of(node: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """``node`` with its ``allOf`` merged in; the parts that would not merge are returned."""
    left: list[Any] = []
    while isinstance(node.get("allOf"), list):
        members = node["allOf"]
        node = {k: v for k, v in node.items() if k != "allOf"}
        for member in members:
            merged = _merge(node, member)
            if merged is None:
                left.append(member)
            else:
                node = merged
    return node, left


def _required_only(branch: Any) -> bool:
    return (isinstance(branch, dict) and isinstance(branch.get("required"), list)
            and set(branch) <= {"required", "description", "title"})


def _choice_sentence(kind: str, branches: list[Any]) -> str:
    options = "; ".join(" + ".join(f"`{k}`" for k in b["required"]) for b in branches)
    quantity = "exactly one" if kind == "oneOf" else "at least one"
    return f"Give {quantity} of: {options}."


def _variant_label(branch: Mapping[str, Any]) -> str:
    label = branch.get("title") or branch.get("description") or ""
    label = _trim(str(label), 80)
    keys = list(branch.get("properties") or {})
    required = [k for k in branch.get("required") or [] if isinstance(k, str)]
    fields = ", ".join(f"`{k}`" + (" (required)" if k in required else "") for k in keys)
    if not fields and required:
        fields = ", ".join(f"`{k}` (required)" for k in required)
    return f"{label} ({fields})" if label else f"({fields})"


# --------------------------------------------------------------------------- root shape


def _provider_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Refs inlined and the root made a plain object every provider accepts."""
    root = inline_refs(schema)
    for key in ("$schema", "$id"):
        root.pop(key, None)
    sentences: list[str] = []
    root, left = _absorb_all_of(root)
    if left:
        sentences.append("Also must match: " + "; ".join(_compact(m) for m in left) + ".")
    for kind in ("anyOf", "oneOf"):
        branches = root.pop(kind, None)
        if not isinstance(branches, list) or not branches:
            continue
        if all(_required_only(b) for b in branches):
            sentences.append(_choice_sentence(kind, branches))
            continue
        props: dict[str, Any] = dict(root.get("properties") or {})
        for branch in branches:
            if isinstance(branch, dict):
                branch, _ = _absorb_all_of(branch)
                for name, sub in (branch.get("properties") or {}).items():
                    props.setdefault(name, sub)
        root["properties"] = props
        quantity = "exactly one" if kind == "oneOf" else "at least one"
        labels = [_variant_label(b) for b in branches if isinstance(b, dict)]
        sentences.append(f"The arguments follow {quantity} of these variants: "
                         + "; ".join(f"{i}. {lab}" for i, lab in enumerate(labels, 1)) + ".")
    types = _types_of(root)
    if "object" in types or not types:
        root["type"] = "object"
    for sentence in sentences:
        root["description"] = _append_sentence(root.get("description"), sentence)
    return root


# --------------------------------------------------------------------------- OpenAI strict


def _count(value: Any, noun: str) -> str:
    return f"{value} {noun}" if value == 1 else f"{value} {noun}s"


def _constraint(key: str, value: Any) -> str | None:
    """A keyword strict mode drops, said in words (``None``: nothing worth saying)."""
    words: dict[str, str] = {
        "minLength": f"at least {_count(value, 'character')}",
        "maxLength": f"at most {_count(value, 'character')}",
        "minProperties": f"at least {_count(value, 'key')}",
        "maxProperties": f"at most {_count(value, 'key')}",
        "minContains": f"at least {value} matching items",
        "maxContains": f"at most {value} matching items",
        "format": f"format {value}",
        "default": f"default {_compact(value)}",
        "not": f"must not match {_compact(value)}",
        "contains": f"must contain an item matching {_compact(value)}",
        "const": f"must be {_compact(value)}",
    }
    if key in words:
        return words[key]
    if key == "uniqueItems":
        return "items must be unique" if value else None
    if key == "deprecated":
        return "deprecated" if value else None
    if key == "examples" and isinstance(value, list):
        return "e.g. " + ", ".join(_compact(v, 80) for v in value[:3]) if value else None
    if key == "example":
        return "e.g. " + _compact(value, 80)
    if key == "dependentRequired" and isinstance(value, dict):
        return "; ".join(f"if `{k}` is given, also give " + ", ".join(f"`{x}`" for x in v)
                         for k, v in value.items() if isinstance(v, list))
    if key in ("anyOf", "oneOf") and isinstance(value, list) and all(map(_required_only, value)):
        return _choice_sentence(key, value).rstrip(".")
    if key.startswith("x-") or key in _SILENTLY_DROPPED:
        return None
    return f"{key} {_compact(value)}"


def _infer_type(node: Mapping[str, Any]) -> str | list[str] | None:
    values: list[Any] | None = None
    if isinstance(node.get("enum"), list):
        values = node["enum"]
    elif "const" in node:
        values = [node["const"]]
    if values:
        found = list(dict.fromkeys(_json_type(v) for v in values))
        if "integer" in found and "number" in found:
            found.remove("integer")
        return found[0] if len(found) == 1 else found
    if {"properties", "additionalProperties", "required", "patternProperties"} & set(node):
        return "object"
    if {"items", "prefixItems", "minItems", "maxItems"} & set(node):
        return "array"
    if {"minLength", "maxLength", "pattern", "format"} & set(node):
        return "string"
    if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"} & set(node):
        return "number"
    return None


def _admits_null(node: Any) -> bool:
    if node is True or node == {}:
        return True
    if not isinstance(node, dict):
        return False
    if "null" in _types_of(node) or None in (node.get("enum") or []):
        return True
    if "const" in node and node["const"] is None:
        return True
    return any(_admits_null(b) for k in ("anyOf", "oneOf") for b in node.get(k) or [])


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` also admitting ``null``, in the form OpenAI's own SDK emits."""
    if "anyOf" in node and "type" not in node:
        if any(isinstance(b, dict) and b.get("type") == "null" for b in node["anyOf"]):
            return node
        return {**node, "anyOf": [*node["anyOf"], {"type": "null"}]}
    types = _types_of(node)
    if "null" in types:
        return node
    if types and not _COMPOSITE & set(types) and "enum" not in node and "const" not in node:
        return {**node, "type": [*types, "null"]}
    inner = {k: v for k, v in node.items() if k != "description"}
    wrapper: dict[str, Any] = {"anyOf": [inner, {"type": "null"}]}
    if node.get("description"):
        wrapper["description"] = node["description"]
    return wrapper


class _Strict:
    """One strict-mode conversion; ``reasons`` collects what it cannot express."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def convert(self, node: Any, path: str) -> dict[str, Any]:
        if not isinstance(node, dict):
            self.reasons.append(f"{_where(path)}: the boolean schema {node!r} has no "
                                "strict-mode form")
            return {"type": "string"}
        node, left = _absorb_all_of(dict(node))
        sentences: list[str] = []
        if left:
            sentences.append("must also match " + "; ".join(_compact(m) for m in left))
        union: list[dict[str, Any]] | None = None
        for kind in ("anyOf", "oneOf"):
            branches = node.pop(kind, None)
            if not isinstance(branches, list) or not branches:
                continue
            if union is not None or all(_required_only(b) for b in branches):
                note = _constraint(kind, branches)
                if note:
                    sentences.append(note)
                continue
            union = self.union(node, kind, branches, path)
            if union is None:
                sentences.append(f"{kind} {_compact(branches)}")
        if union is not None:
            out: dict[str, Any] = {"anyOf": union}
            description = node.get("description") or node.get("title")
            if isinstance(description, str) and description:
                out["description"] = description
            return self.describe(out, sentences)
        return self.describe(self.typed(node, path, sentences), sentences)

    def union(self, node: dict[str, Any], kind: str, branches: list[Any],
              path: str) -> list[dict[str, Any]] | None:
        base = {k: v for k, v in node.items()
                if k not in ("description", "title", "anyOf", "oneOf")}
        variants: list[Any] = []
        for branch in branches:
            if not base:
                variants.append(branch)
                continue
            merged = _merge(base, branch)
            if merged is None:
                return None
            variants.append(merged)
        return [self.convert(v, _pointer(path, "anyOf", i)) for i, v in enumerate(variants)]

    def describe(self, out: dict[str, Any], sentences: list[str]) -> dict[str, Any]:
        if sentences:
            text = "Constraints: " + "; ".join(sentences) + "."
            out["description"] = _append_sentence(out.get("description"), text)
        return out

    def typed(self, node: dict[str, Any], path: str, sentences: list[str]) -> dict[str, Any]:
        declared = node.get("type")
        inferred = declared if declared is not None else _infer_type(node)
        if inferred is None:
            self.reasons.append(f"{_where(path)}: a schema without a type (any value) has no "
                                "strict-mode form")
            return {"type": "string"}
        types = [inferred] if isinstance(inferred, str) else list(inferred)
        unknown = [t for t in types if t not in _TYPES]
        if unknown or not types:
            self.reasons.append(f"{_where(path)}: unknown type {inferred!r}")
            return {"type": "string"}
        if "null" in types and len(types) > 1 and _COMPOSITE & set(types):
            rest = [t for t in types if t != "null"]
            inner = self.typed({**node, "type": rest[0] if len(rest) == 1 else rest}, path,
                               sentences)
            return _nullable(inner)
        if len(_COMPOSITE & set(types)) and len([t for t in types if t != "null"]) > 1:
            self.reasons.append(f"{_where(path)}: a schema of several types including "
                                f"{'/'.join(sorted(_COMPOSITE & set(types)))} has no "
                                "strict-mode form")
        out: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
        description = node.get("description")
        if isinstance(description, str) and description:
            out["description"] = description
        elif isinstance(node.get("title"), str) and node["title"]:
            out["description"] = node["title"]
        structural = {"type", "description", "title", "properties", "required",
                      "additionalProperties", "items"}
        for key, value in node.items():
            if key in structural:
                continue
            keep = key in ("enum", "const") or key in _KEPT_IN_STRICT or (
                key == "format" and value in OPENAI_STRICT_FORMATS)
            if keep:
                out[key] = value
            elif key in ("minLength", "maxLength") and node.get("minLength") == node.get(
                    "maxLength"):
                if key == "minLength":
                    sentences.append(f"exactly {_count(value, 'character')}")
            else:
                note = _constraint(key, value)
                if note:
                    sentences.append(note)
        if "object" in types:
            self.object(node, out, path)
        if "array" in types:
            self.array(node, out, path)
        return out

    def object(self, node: dict[str, Any], out: dict[str, Any], path: str) -> None:
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props is None:
            props = {}
        if not isinstance(props, dict):
            self.reasons.append(f"{_pointer(path, 'properties')}: not an object")
            props = {}
        if isinstance(extra, dict) and extra != {}:
            self.reasons.append(f"{_where(path)}: a map (additionalProperties with a schema) "
                                "has no strict-mode form")
        elif not props and extra is not False:
            self.reasons.append(f"{_where(path)}: a free-form object (no declared properties) "
                                "has no strict-mode form")
        required = [r for r in node.get("required") or [] if isinstance(r, str)]
        undeclared = [r for r in required if r not in props]
        if undeclared:
            self.reasons.append(f"{_pointer(path, 'required')}: required but undeclared "
                                f"properties {undeclared} have no strict-mode form")
        converted: dict[str, Any] = {}
        for name, sub in props.items():
            child = self.convert(sub, _pointer(path, "properties", name))
            if name not in required:
                if _admits_null(sub):
                    child["description"] = _append_sentence(
                        child.get("description"), "null means: leave it unset.")
                child = _nullable(child)
            converted[name] = child
        out["properties"] = converted
        out["required"] = list(converted)
        out["additionalProperties"] = False

    def array(self, node: dict[str, Any], out: dict[str, Any], path: str) -> None:
        items = node.get("items")
        if "prefixItems" in node or isinstance(items, list):
            self.reasons.append(f"{_where(path)}: tuple arrays (prefixItems) have no "
                                "strict-mode form")
            items = {}
        if items is None:
            self.reasons.append(f"{_where(path)}: an array without items has no strict-mode "
                                "form")
            items = {"type": "string"}
        out["items"] = self.convert(items, _pointer(path, "items"))


def openai_strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` (an action's input) as OpenAI strict-mode parameters.

    Raises :class:`StrictModeUnsupported` when strict mode cannot express it faithfully or it
    exceeds OpenAI's limits (see the module docstring)."""
    return _strict_from_flat(_provider_schema(schema))


def _strict_from_flat(flat: dict[str, Any]) -> dict[str, Any]:
    converter = _Strict()
    out = converter.convert(flat, "")
    reasons = converter.reasons
    if not reasons:
        if out.get("type") != "object":
            reasons.append("/: the root is not an object")
        reasons.extend(_openai_limit_problems(out, ""))
    if reasons:
        raise StrictModeUnsupported(reasons)
    return out


# --------------------------------------------------------------------------- converters


def to_openai(tool: Tool, *, strict: bool = True,
              style: Literal["chat", "responses"] = "chat") -> dict[str, Any]:
    """The OpenAI function tool for ``tool``: Chat Completions form (``style="chat"``) or
    the Responses API's flat form. With ``strict`` the parameters follow Structured Outputs;
    a tool strict mode cannot express is emitted with ``"strict": false`` instead."""
    parameters = _provider_schema(tool.input_schema)
    is_strict = False
    if strict:
        try:
            parameters = _strict_from_flat(parameters)
            is_strict = True
        except StrictModeUnsupported:
            pass
    function: dict[str, Any] = {
        "name": tool.name,
        "description": _trim(tool.description, OPENAI_DESCRIPTION_MAX),
        "parameters": parameters,
        "strict": is_strict,
    }
    if style == "chat":
        return {"type": "function", "function": function}
    if style == "responses":
        return {"type": "function", **function}
    raise ValueError(f"unknown OpenAI style {style!r}")


def to_anthropic(tool: Tool) -> dict[str, Any]:
    """The Anthropic Messages API tool for ``tool``."""
    return {"name": tool.name, "description": tool.description,
            "input_schema": _provider_schema(tool.input_schema)}


def to_mcp(tool: Tool) -> dict[str, Any]:
    """``tool`` as a plain-dict MCP ``Tool`` (``tools/list`` wire form)."""
    return {
        "name": tool.name,
        "title": tool.title,
        "description": tool.description,
        "inputSchema": _provider_schema(tool.input_schema),
        "annotations": {
            "title": tool.title,
            "readOnlyHint": tool.read_only,
            "destructiveHint": tool.destructive,
            "idempotentHint": tool.idempotent,
            "openWorldHint": True,
        },
    }


_EXPORTERS: dict[str, Callable[[Tool], dict[str, Any]]] = {
    "openai": to_openai,
    "openai-responses": lambda tool: to_openai(tool, style="responses"),
    "anthropic": to_anthropic,
    "mcp": to_mcp,
}


def export_tools(catalog: ToolCatalog | Iterable[Tool], format: ExportFormat
                 ) -> list[dict[str, Any]]:
    """Every tool of ``catalog`` in ``format`` (OpenAI definitions are strict when they can
    be)."""
    try:
        exporter = _EXPORTERS[format]
    except KeyError:
        raise ValueError(f"unknown tool format {format!r}; expected one of "
                         f"{', '.join(_EXPORTERS)}") from None
    return [exporter(tool) for tool in catalog]


# --------------------------------------------------------------------------- arguments


def drop_strict_nulls(schema: Mapping[str, Any], arguments: Mapping[str, Any]
                      ) -> dict[str, Any]:
    """``arguments`` from a strict-mode model made fit for the action's real ``schema``:
    ``null`` values of properties that ``schema`` does not require are removed, in nested
    objects and arrays too. A ``null`` for a required property is kept (the schema decides
    whether it is allowed)."""
    cleaned = _drop_nulls(inline_refs(schema), _plain(arguments))
    return cleaned if isinstance(cleaned, dict) else dict(arguments)


def _views(schema: Any) -> list[dict[str, Any]]:
    """``schema`` and every schema it applies in place (allOf, anyOf, oneOf, if/then/else)."""
    if not isinstance(schema, dict):
        return []
    out = [schema]
    for key in ("allOf", "anyOf", "oneOf"):
        for member in schema.get(key) or []:
            out.extend(_views(member))
    for key in ("then", "else"):
        out.extend(_views(schema.get(key)))
    return out


def _required_keys(schema: Any) -> set[str]:
    if not isinstance(schema, dict):
        return set()
    keys = {r for r in schema.get("required") or [] if isinstance(r, str)}
    for member in schema.get("allOf") or []:
        keys |= _required_keys(member)
    for key in ("anyOf", "oneOf"):
        branches = [b for b in schema.get(key) or [] if isinstance(b, dict)]
        if branches:
            keys |= set.intersection(*(_required_keys(b) for b in branches))
    return keys


def _joined(schemas: list[Any]) -> Any:
    return schemas[0] if len(schemas) == 1 else {"allOf": schemas}


def _drop_nulls(schema: Any, value: Any) -> Any:
    views = _views(schema)
    if not views:
        return value
    if isinstance(value, dict):
        required = _required_keys(schema)
        props: dict[str, list[Any]] = {}
        extra: list[Any] = []
        for view in views:
            for name, sub in (view.get("properties") or {}).items():
                props.setdefault(name, []).append(sub)
            if isinstance(view.get("additionalProperties"), dict):
                extra.append(view["additionalProperties"])
        out: dict[str, Any] = {}
        for name, item in value.items():
            subs = props.get(name)
            if subs is not None:
                if item is None and name not in required:
                    continue
                out[name] = _drop_nulls(_joined(subs), item)
            elif extra:
                out[name] = _drop_nulls(_joined(extra), item)
            else:
                out[name] = item
        return out
    if isinstance(value, list):
        prefix: list[Any] = []
        items: list[Any] = []
        for view in views:
            if isinstance(view.get("prefixItems"), list) and not prefix:
                prefix = view["prefixItems"]
            if isinstance(view.get("items"), dict):
                items.append(view["items"])
        rest = _joined(items) if items else None
        return [_drop_nulls(prefix[i] if i < len(prefix) else rest, x)
                for i, x in enumerate(value)]
    return value


# --------------------------------------------------------------------------- checkers


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
        where = _pointer(path, *exc.instance_path)
        return [f"{where}: not a valid JSON Schema (2020-12): {exc.message}"]
    except Exception as exc:  # referencing errors and the like
        return [f"{_where(path)}: not a usable JSON Schema: {exc}"]
    return []


def _root_problems(schema: Any, path: str) -> list[str]:
    if not isinstance(schema, dict):
        return [f"{_where(path)}: the input schema must be a JSON object"]
    problems = []
    if schema.get("type") != "object":
        problems.append(f"{_pointer(path, 'type')}: the root must have type \"object\" "
                        f"(found {schema.get('type')!r})")
    problems += [f"{_pointer(path, k)}: no {k} at the top level of the input schema"
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
    problems += _name_problems(function.get("name"), _pointer(base, "name"))
    description = function.get("description")
    if description is not None:
        if not isinstance(description, str):
            problems.append(f"{_pointer(base, 'description')}: must be a string")
        elif len(description) > OPENAI_DESCRIPTION_MAX:
            problems.append(f"{_pointer(base, 'description')}: {len(description)} characters, "
                            f"over the limit of {OPENAI_DESCRIPTION_MAX}")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        problems.append(f"{_pointer(base, 'strict')}: must be true or false")
    parameters = function.get("parameters")
    path = _pointer(base, "parameters")
    problems += _root_problems(parameters, path)
    if strict is True and isinstance(parameters, dict):
        rules = _StrictRules(parameters)
        problems += rules.check(parameters, path)
        for name, sub in rules.defs.items():
            problems += rules.check(sub, _pointer(path, "$defs", name))
        problems += _openai_limit_problems(parameters, path)
    return problems


class _StrictRules:
    def __init__(self, root: dict[str, Any]) -> None:
        defs = root.get("$defs")
        self.defs: dict[str, Any] = defs if isinstance(defs, dict) else {}

    def check(self, node: Any, path: str) -> list[str]:
        if not isinstance(node, dict):
            return [f"{_where(path)}: boolean schemas are not supported in strict mode"]
        problems = [f"{_pointer(path, k)}: {k!r} is not supported in strict mode"
                    for k in node if k not in OPENAI_STRICT_KEYWORDS]
        if "$ref" in node:
            ref = node["$ref"]
            local = isinstance(ref, str) and (ref == "#" or (
                ref.startswith("#/$defs/") and unquote(ref[8:]).replace("~1", "/")
                .replace("~0", "~") in self.defs))
            if not local:
                problems.append(f"{_pointer(path, '$ref')}: {ref!r} does not point into $defs")
            return problems
        if "anyOf" in node:
            branches = node["anyOf"]
            if not isinstance(branches, list) or not branches:
                return [*problems, f"{_pointer(path, 'anyOf')}: must be a non-empty list"]
            for i, branch in enumerate(branches):
                problems += self.check(branch, _pointer(path, "anyOf", i))
            if "type" not in node:
                return problems
        types = _types_of(node)
        if "type" not in node:
            return [*problems, f"{_where(path)}: every schema needs a type in strict mode"]
        if not types or any(t not in _TYPES for t in types):
            problems.append(f"{_pointer(path, 'type')}: unknown type {node['type']!r}")
        if "format" in node and node["format"] not in OPENAI_STRICT_FORMATS:
            problems.append(f"{_pointer(path, 'format')}: format {node['format']!r} is not "
                            "supported in strict mode")
        if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
            problems.append(f"{_pointer(path, 'enum')}: must be a non-empty list")
        if "object" in types:
            problems += self.object(node, path)
        if "array" in types:
            items = node.get("items")
            if isinstance(items, dict):
                problems += self.check(items, _pointer(path, "items"))
            else:
                problems.append(f"{_where(path)}: arrays need an items schema in strict mode")
        return problems

    def object(self, node: dict[str, Any], path: str) -> list[str]:
        problems: list[str] = []
        props = node.get("properties", {})
        if not isinstance(props, dict):
            return [f"{_pointer(path, 'properties')}: must be an object"]
        if node.get("additionalProperties") is not False:
            problems.append(f"{_where(path)}: objects must set additionalProperties: false "
                            "in strict mode")
        required = node.get("required", [])
        if not isinstance(required, list):
            return [*problems, f"{_pointer(path, 'required')}: must be a list"]
        missing = [p for p in props if p not in required]
        if missing:
            problems.append(f"{_pointer(path, 'required')}: strict mode needs every property "
                            f"listed in required; missing {missing}")
        undeclared = [r for r in required if r not in props]
        if undeclared:
            problems.append(f"{_pointer(path, 'required')}: names undeclared properties "
                            f"{undeclared}")
        for name, sub in props.items():
            problems += self.check(sub, _pointer(path, "properties", name))
        return problems


def _openai_limit_problems(schema: dict[str, Any], path: str) -> list[str]:
    """OpenAI's documented size limits for strict schemas (module docstring)."""
    counts = {"properties": 0, "enum": 0, "chars": 0, "nesting": 0}
    problems: list[str] = []
    deepest = ""

    def walk(node: Any, where: str, level: int) -> None:
        nonlocal deepest
        if not isinstance(node, dict):
            return
        if _COMPOSITE & set(_types_of(node)):
            level += 1
            if level > counts["nesting"]:
                counts["nesting"], deepest = level, where
        props = node.get("properties")
        if isinstance(props, dict):
            counts["properties"] += len(props)
            counts["chars"] += sum(len(k) for k in props)
            for name, sub in props.items():
                walk(sub, _pointer(where, "properties", name), level)
        defs = node.get("$defs")
        if isinstance(defs, dict):
            counts["chars"] += sum(len(k) for k in defs)
            for name, sub in defs.items():
                walk(sub, _pointer(where, "$defs", name), 0)
        enum = node.get("enum")
        if isinstance(enum, list):
            counts["enum"] += len(enum)
            strings = [v for v in enum if isinstance(v, str)]
            counts["chars"] += sum(len(v) for v in strings)
            if len(enum) > OPENAI_LARGE_ENUM and len(strings) == len(enum) and \
                    sum(map(len, strings)) > OPENAI_LARGE_ENUM_CHARS:
                problems.append(f"{_pointer(where, 'enum')}: a string enum of more than "
                                f"{OPENAI_LARGE_ENUM} values may hold at most "
                                f"{OPENAI_LARGE_ENUM_CHARS} characters")
        if isinstance(node.get("const"), str):
            counts["chars"] += len(node["const"])
        if isinstance(node.get("items"), dict):
            walk(node["items"], _pointer(where, "items"), level)
        for i, branch in enumerate(node.get("anyOf") or []):
            walk(branch, _pointer(where, "anyOf", i), level)

    walk(schema, path, 0)
    if counts["nesting"] > OPENAI_MAX_NESTING:
        problems.append(f"{_where(deepest)}: {counts['nesting']} levels of nesting (objects "
                        f"and arrays), over the limit of {OPENAI_MAX_NESTING}")
    if counts["properties"] > OPENAI_MAX_PROPERTIES:
        problems.append(f"{_where(path)}: {counts['properties']} object properties, over the "
                        f"limit of {OPENAI_MAX_PROPERTIES}")
    if counts["enum"] > OPENAI_MAX_ENUM_VALUES:
        problems.append(f"{_where(path)}: {counts['enum']} enum values, over the limit of "
                        f"{OPENAI_MAX_ENUM_VALUES}")
    if counts["chars"] > OPENAI_MAX_STRING_CHARS:
        problems.append(f"{_where(path)}: {counts['chars']} characters of property names and "
                        f"enum/const values, over the limit of {OPENAI_MAX_STRING_CHARS}")
    return problems


def anthropic_problems(definition: Mapping[str, Any]) -> list[str]:
    """What the Anthropic Messages API would refuse in ``definition`` (a custom tool)."""
    problems = [f"/{_esc(k)}: unknown tool field" for k in definition if k not in _ANTHROPIC_KEYS]
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
            problems.append(f"{_pointer('', *error['loc'])}: {error['msg']}")
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
