"""Small helpers the provider-schema modules share: plain copies of schemas, JSON pointers
to name where a problem is, a schema's declared types, and the short texts the converters add
to descriptions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ANNOTATIONS",
    "COMPOSITE_TYPES",
    "JSON_TYPES",
    "JSON_WRAPPER_KEY",
    "admits",
    "append_sentence",
    "compact_json",
    "json_pointer",
    "plain_copy",
    "pointer_token",
    "shown_path",
    "trim_text",
    "types_of",
    "value_types",
]

#: keywords that say something about a value without constraining it
ANNOTATIONS = frozenset({
    "description", "title", "default", "examples", "example", "deprecated", "readOnly",
    "writeOnly", "$comment",
})
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
COMPOSITE_TYPES = frozenset({"object", "array"})
#: the key of ``{"json": "..."}``, how a strict-mode model gives an object or array where the
#: action takes a value of any type (:mod:`patchwire.tools._openai_strict`)
JSON_WRAPPER_KEY = "json"


def plain_copy(value: Any) -> Any:
    """A deep copy made of plain dicts and lists (schemas may arrive as read-only mappings)."""
    if isinstance(value, Mapping):
        return {str(k): plain_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_copy(v) for v in value]
    return value


def pointer_token(token: str | int) -> str:
    """``token`` escaped for a JSON pointer (``~`` and ``/``)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def json_pointer(base: str, *tokens: str | int) -> str:
    """The JSON pointer ``base`` extended by ``tokens``."""
    return base + "".join("/" + pointer_token(t) for t in tokens)


def shown_path(path: str) -> str:
    """``path`` as shown in a problem: the root's empty pointer reads ``/``."""
    return path or "/"


def compact_json(value: Any, limit: int = 200) -> str:
    """``value`` as one line of JSON, cut to ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def append_sentence(description: str | None, sentence: str) -> str:
    """``description`` with ``sentence`` after it (the description ends in a full stop)."""
    if not description or not description.strip():
        return sentence
    text = description.rstrip()
    if not text.endswith((".", "!", "?", ":")):
        text += "."
    return f"{text} {sentence}"


def trim_text(text: str, limit: int) -> str:
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


def types_of(node: Mapping[str, Any]) -> list[str]:
    """The type names ``node`` declares (none when it declares no ``type``)."""
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


def value_types(node: Mapping[str, Any]) -> list[str]:
    """The types ``node`` declares, or else the ones its keywords imply (``properties``: an
    object, ``items``: an array, an ``enum``: its values' types...); none for a schema that
    says nothing about the type (any value). OpenAI strict mode and the decoding of its
    arguments read a schema the same way through this."""
    declared = types_of(node)
    if declared or "type" in node:
        return declared
    values: list[Any] | None = None
    if isinstance(node.get("enum"), list):
        values = node["enum"]
    elif "const" in node:
        values = [node["const"]]
    if values:
        found = list(dict.fromkeys(_json_type(v) for v in values))
        if "integer" in found and "number" in found:
            found.remove("integer")
        return found
    if {"properties", "additionalProperties", "required", "patternProperties"} & set(node):
        return ["object"]
    if {"items", "prefixItems", "minItems", "maxItems"} & set(node):
        return ["array"]
    if {"minLength", "maxLength", "pattern", "format"} & set(node):
        return ["string"]
    if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"} & set(node):
        return ["number"]
    return []


def admits(schema: Any, json_type: str) -> bool:
    """Whether ``schema`` (refs inlined) lets some value of ``json_type`` through, as far as
    types go (``allOf`` members must all let it, one ``anyOf``/``oneOf`` branch must)."""
    if schema is True:
        return True
    if not isinstance(schema, Mapping):
        return False
    for member in schema.get("allOf") or []:
        if not admits(member, json_type):
            return False
    for kind in ("anyOf", "oneOf"):
        branches = schema.get(kind)
        if isinstance(branches, list) and branches and not any(
                admits(b, json_type) for b in branches):
            return False
    types = value_types(schema)
    if not types:
        return True
    return json_type in types or (json_type == "integer" and "number" in types)
