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
    "append_sentence",
    "compact_json",
    "json_pointer",
    "plain_copy",
    "pointer_token",
    "shown_path",
    "trim_text",
    "types_of",
]

#: keywords that say something about a value without constraining it
ANNOTATIONS = frozenset({
    "description", "title", "default", "examples", "example", "deprecated", "readOnly",
    "writeOnly", "$comment",
})
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
COMPOSITE_TYPES = frozenset({"object", "array"})


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
