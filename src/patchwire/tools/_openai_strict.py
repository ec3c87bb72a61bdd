"""OpenAI strict mode (Structured Outputs): an action's input as strict-mode parameters.

What strict mode accepts, with its limits, is written down in
:mod:`patchwire.tools._provider_rules`; :func:`openai_strict_schema` brings an action's input
schema there, starting from the flat object root every provider gets
(:mod:`patchwire.tools._root_shape`):

    * Every object gets ``additionalProperties: false`` and lists every property in
      ``required``; an optional property becomes nullable (``"type": [T, "null"]`` for plain
      scalars, ``anyOf: [..., {"type": "null"}]`` otherwise) and
      :func:`~patchwire.tools.drop_strict_nulls` removes those nulls again before a call.
    * Only the keywords strict mode supports are kept. Everything else — minLength, maxLength,
      minProperties, maxProperties, patternProperties, propertyNames, unevaluatedProperties,
      unevaluatedItems, contains, minContains, maxContains, uniqueItems, allOf, not,
      if/then/else, dependentRequired, dependentSchemas, default, examples, other formats... —
      is removed and said in the schema's description ("Constraints: at most 200
      characters; default 30.") so the model still learns it; the action's own validation
      still enforces it. ``allOf`` is merged when the parts agree; ``oneOf`` becomes ``anyOf``;
      ``anyOf``/``oneOf`` beside an object's own keywords are distributed into whole variants.
    * What strict mode cannot say: free-form objects (no declared properties, or
      ``additionalProperties`` with a schema: maps), schemas with no type (any value), tuple
      arrays, boolean schemas, and anything past the limits. :func:`openai_strict_schema`
      raises :class:`StrictModeUnsupported` naming each reason with its JSON path, and such a
      tool is emitted with ``strict: false`` and the non-strict schema (refs inlined, root
      flattened) rather than with a schema that would refuse real arguments
      (:func:`~patchwire.tools.to_openai`).
    * Strict mode cannot tell "absent" from ``null``: a null for an optional property is taken
      as "not given" (such properties that accept null say so in their description).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from patchwire.tools._provider_rules import OPENAI_STRICT_FORMATS, openai_limit_problems
from patchwire.tools._root_shape import (
    absorb_all_of,
    choice_sentence,
    merge_schemas,
    provider_schema,
    required_only,
)
from patchwire.tools._schema_common import (
    COMPOSITE_TYPES,
    JSON_TYPES,
    append_sentence,
    compact_json,
    json_pointer,
    shown_path,
    types_of,
)

__all__ = ["StrictModeUnsupported", "openai_strict_schema", "strict_from_flat"]

_KEPT_IN_STRICT = frozenset({
    "pattern", "multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minItems", "maxItems",
})
_SILENTLY_DROPPED = frozenset({
    "$schema", "$id", "$anchor", "$comment", "$dynamicAnchor", "readOnly", "writeOnly",
    "nullable", "discriminator", "xml", "externalDocs",
})


class StrictModeUnsupported(ValueError):
    """A schema OpenAI strict mode cannot express faithfully; ``reasons`` name JSON paths."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("strict mode cannot express this schema: " + "; ".join(self.reasons))


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
        "default": f"default {compact_json(value)}",
        "not": f"must not match {compact_json(value)}",
        "contains": f"must contain an item matching {compact_json(value)}",
        "const": f"must be {compact_json(value)}",
    }
    if key in words:
        return words[key]
    if key == "uniqueItems":
        return "items must be unique" if value else None
    if key == "deprecated":
        return "deprecated" if value else None
    if key == "examples" and isinstance(value, list):
        return "e.g. " + ", ".join(compact_json(v, 80) for v in value[:3]) if value else None
    if key == "example":
        return "e.g. " + compact_json(value, 80)
    if key == "dependentRequired" and isinstance(value, dict):
        return "; ".join(f"if `{k}` is given, also give " + ", ".join(f"`{x}`" for x in v)
                         for k, v in value.items() if isinstance(v, list))
    if key in ("anyOf", "oneOf") and isinstance(value, list) and all(map(required_only, value)):
        return choice_sentence(key, value).rstrip(".")
    if key.startswith("x-") or key in _SILENTLY_DROPPED:
        return None
    return f"{key} {compact_json(value)}"


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
    if "null" in types_of(node) or None in (node.get("enum") or []):
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
    types = types_of(node)
    if "null" in types:
        return node
    if types and not COMPOSITE_TYPES & set(types) and "enum" not in node and "const" not in node:
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
            self.reasons.append(f"{shown_path(path)}: the boolean schema {node!r} has no "
                                "strict-mode form")
            return {"type": "string"}
        node, left = absorb_all_of(dict(node))
        sentences: list[str] = []
        if left:
            sentences.append("must also match " + "; ".join(compact_json(m) for m in left))
        union: list[dict[str, Any]] | None = None
        for kind in ("anyOf", "oneOf"):
            branches = node.pop(kind, None)
            if not isinstance(branches, list) or not branches:
                continue
            if union is not None or all(required_only(b) for b in branches):
                note = _constraint(kind, branches)
                if note:
                    sentences.append(note)
                continue
            union = self.union(node, kind, branches, path)
            if union is None:
                sentences.append(f"{kind} {compact_json(branches)}")
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
            merged = merge_schemas(base, branch)
            if merged is None:
                return None
            variants.append(merged)
        return [self.convert(v, json_pointer(path, "anyOf", i)) for i, v in enumerate(variants)]

    def describe(self, out: dict[str, Any], sentences: list[str]) -> dict[str, Any]:
        if sentences:
            text = "Constraints: " + "; ".join(sentences) + "."
            out["description"] = append_sentence(out.get("description"), text)
        return out

    def typed(self, node: dict[str, Any], path: str, sentences: list[str]) -> dict[str, Any]:
        declared = node.get("type")
        inferred = declared if declared is not None else _infer_type(node)
        if inferred is None:
            self.reasons.append(f"{shown_path(path)}: a schema without a type (any value) has no "
                                "strict-mode form")
            return {"type": "string"}
        types = [inferred] if isinstance(inferred, str) else list(inferred)
        unknown = [t for t in types if t not in JSON_TYPES]
        if unknown or not types:
            self.reasons.append(f"{shown_path(path)}: unknown type {inferred!r}")
            return {"type": "string"}
        if "null" in types and len(types) > 1 and COMPOSITE_TYPES & set(types):
            rest = [t for t in types if t != "null"]
            inner = self.typed({**node, "type": rest[0] if len(rest) == 1 else rest}, path,
                               sentences)
            return _nullable(inner)
        if len(COMPOSITE_TYPES & set(types)) and len([t for t in types if t != "null"]) > 1:
            self.reasons.append(f"{shown_path(path)}: a schema of several types including "
                                f"{'/'.join(sorted(COMPOSITE_TYPES & set(types)))} has no "
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
            self.reasons.append(f"{json_pointer(path, 'properties')}: not an object")
            props = {}
        if isinstance(extra, dict) and extra != {}:
            self.reasons.append(f"{shown_path(path)}: a map (additionalProperties with a schema) "
                                "has no strict-mode form")
        elif not props and extra is not False:
            self.reasons.append(f"{shown_path(path)}: a free-form object (no declared properties) "
                                "has no strict-mode form")
        required = [r for r in node.get("required") or [] if isinstance(r, str)]
        undeclared = [r for r in required if r not in props]
        if undeclared:
            self.reasons.append(f"{json_pointer(path, 'required')}: required but undeclared "
                                f"properties {undeclared} have no strict-mode form")
        converted: dict[str, Any] = {}
        for name, sub in props.items():
            child = self.convert(sub, json_pointer(path, "properties", name))
            if name not in required:
                if _admits_null(sub):
                    child["description"] = append_sentence(
                        child.get("description"), "null means: leave it unset.")
                child = _nullable(child)
            converted[name] = child
        out["properties"] = converted
        out["required"] = list(converted)
        out["additionalProperties"] = False

    def array(self, node: dict[str, Any], out: dict[str, Any], path: str) -> None:
        items = node.get("items")
        if "prefixItems" in node or isinstance(items, list):
            self.reasons.append(f"{shown_path(path)}: tuple arrays (prefixItems) have no "
                                "strict-mode form")
            items = {}
        if items is None:
            self.reasons.append(f"{shown_path(path)}: an array without items has no strict-mode "
                                "form")
            items = {"type": "string"}
        out["items"] = self.convert(items, json_pointer(path, "items"))


def openai_strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` (an action's input) as OpenAI strict-mode parameters.

    Raises :class:`StrictModeUnsupported` when strict mode cannot express it faithfully or it
    exceeds OpenAI's limits (see the module docstring)."""
    return strict_from_flat(provider_schema(schema))


def strict_from_flat(flat: dict[str, Any]) -> dict[str, Any]:
    """:func:`openai_strict_schema` of a schema already made flat by
    :func:`~patchwire.tools._root_shape.provider_schema`."""
    converter = _Strict()
    out = converter.convert(flat, "")
    reasons = converter.reasons
    if not reasons:
        if out.get("type") != "object":
            reasons.append("/: the root is not an object")
        reasons.extend(openai_limit_problems(out, ""))
    if reasons:
        raise StrictModeUnsupported(reasons)
    return out
