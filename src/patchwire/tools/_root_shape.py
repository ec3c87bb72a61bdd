"""The root every provider accepts, and the merging of schemas it is made with.

Anthropic refuses ``anyOf``/``oneOf``/``allOf`` at the root of an input schema, OpenAI requires
an object root, and MCP hosts forward MCP schemas to those APIs (the shared rules in
:mod:`patchwire.tools._provider_rules`). :func:`provider_schema` inlines the references
(:func:`~patchwire.tools.inline_refs`) and makes the root a plain ``{"type": "object"}``: a
root ``allOf`` is merged into the root; root ``anyOf``/``oneOf`` branches that only name
required keys become a sentence of the description ("Give at least one of: ..."); other
branches have their properties merged into the root (all optional) and are listed in the
description. OpenAI strict mode merges ``allOf`` with the same :func:`merge_schemas`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchwire.tools._schema_common import (
    ANNOTATIONS,
    append_sentence,
    compact_json,
    trim_text,
    types_of,
)
from patchwire.tools._schema_refs import inline_refs

__all__ = [
    "absorb_all_of",
    "choice_sentence",
    "merge_schemas",
    "provider_schema",
    "required_only",
]

_LOWER_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "minLength", "minItems",
                           "minProperties"})
_UPPER_BOUNDS = frozenset({"maximum", "exclusiveMaximum", "maxLength", "maxItems",
                           "maxProperties"})


def _meet(x: str, y: str) -> str | None:
    if x == y:
        return x
    return "integer" if {x, y} == {"integer", "number"} else None


def merge_schemas(a: Mapping[str, Any], b: Any) -> dict[str, Any] | None:
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
        if key in ANNOTATIONS:
            continue  # the first one's annotation stays
        current = out[key]
        if key == "properties" and isinstance(current, dict) and isinstance(value, dict):
            props = dict(current)
            for name, sub in value.items():
                if name in props and props[name] != sub:
                    both = (merge_schemas(props[name], sub) if isinstance(props[name], dict)
                            else None)
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
                t for x in types_of(out) for y in types_of(b) if (t := _meet(x, y))))
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


def absorb_all_of(node: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """``node`` with its ``allOf`` merged in; the parts that would not merge are returned."""
    left: list[Any] = []
    while isinstance(node.get("allOf"), list):
        members = node["allOf"]
        node = {k: v for k, v in node.items() if k != "allOf"}
        for member in members:
            merged = merge_schemas(node, member)
            if merged is None:
                left.append(member)
            else:
                node = merged
    return node, left


def required_only(branch: Any) -> bool:
    """Whether ``branch`` (of an ``anyOf``/``oneOf``) only names required keys."""
    return (isinstance(branch, dict) and isinstance(branch.get("required"), list)
            and set(branch) <= {"required", "description", "title"})


def choice_sentence(kind: str, branches: list[Any]) -> str:
    """Branches that only name required keys, said as a sentence for the description."""
    options = "; ".join(" + ".join(f"`{k}`" for k in b["required"]) for b in branches)
    quantity = "exactly one" if kind == "oneOf" else "at least one"
    return f"Give {quantity} of: {options}."


def _variant_label(branch: Mapping[str, Any]) -> str:
    label = branch.get("title") or branch.get("description") or ""
    label = trim_text(str(label), 80)
    keys = list(branch.get("properties") or {})
    required = [k for k in branch.get("required") or [] if isinstance(k, str)]
    fields = ", ".join(f"`{k}`" + (" (required)" if k in required else "") for k in keys)
    if not fields and required:
        fields = ", ".join(f"`{k}` (required)" for k in required)
    return f"{label} ({fields})" if label else f"({fields})"


def provider_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Refs inlined and the root made a plain object every provider accepts."""
    root = inline_refs(schema)
    for key in ("$schema", "$id"):
        root.pop(key, None)
    sentences: list[str] = []
    root, left = absorb_all_of(root)
    if left:
        sentences.append("Also must match: " + "; ".join(compact_json(m) for m in left) + ".")
    for kind in ("anyOf", "oneOf"):
        branches = root.pop(kind, None)
        if not isinstance(branches, list) or not branches:
            continue
        if all(required_only(b) for b in branches):
            sentences.append(choice_sentence(kind, branches))
            continue
        props: dict[str, Any] = dict(root.get("properties") or {})
        for branch in branches:
            if isinstance(branch, dict):
                branch, _ = absorb_all_of(branch)
                for name, sub in (branch.get("properties") or {}).items():
                    props.setdefault(name, sub)
        root["properties"] = props
        quantity = "exactly one" if kind == "oneOf" else "at least one"
        labels = [_variant_label(b) for b in branches if isinstance(b, dict)]
        sentences.append(f"The arguments follow {quantity} of these variants: "
                         + "; ".join(f"{i}. {lab}" for i, lab in enumerate(labels, 1)) + ".")
    types = types_of(root)
    if "object" in types or not types:
        root["type"] = "object"
    for sentence in sentences:
        root["description"] = append_sentence(root.get("description"), sentence)
    return root

