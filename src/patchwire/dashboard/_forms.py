"""The playground's forms, built from a tool's JSON Schema, and their values converted back
to arguments of the schema's types."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["build_arguments", "form_fields"]


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if not isinstance(kind, str):
        if "enum" in schema:
            return "string"
        return "json"
    return kind


def form_fields(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One form field per top-level property of a tool's input schema; anything nested
    (objects, arrays) is a JSON text area."""
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    fields: list[dict[str, Any]] = []
    for name, prop in props.items():
        if not isinstance(prop, Mapping):
            prop = {}
        kind = _kind(prop)
        widget = {"integer": "number", "number": "number", "boolean": "boolean",
                  "object": "json", "array": "json", "json": "json"}.get(kind, "text")
        enum = prop.get("enum")
        if isinstance(enum, list) and enum:
            widget = "enum"
        fields.append({
            "name": str(name), "kind": kind, "widget": widget, "required": name in required,
            "description": str(prop.get("description") or prop.get("title") or ""),
            "enum": [str(e) for e in enum] if isinstance(enum, list) else [],
            "default": prop.get("default"),
            "step": "1" if kind == "integer" else "any",
            "placeholder": "[ ]" if kind == "array" else ("{ }" if widget == "json" else ""),
        })
    return fields


def build_arguments(fields: list[dict[str, Any]], values: Mapping[str, str]) -> dict[str, Any]:
    """Form values as arguments of the schema's types. A value that does not convert is
    passed as typed, so the tool's validation answers as it would answer a model."""
    out: dict[str, Any] = {}
    for f in fields:
        text = values.get(f["name"], "")
        if text.strip() == "":
            continue  # left empty: not given
        out[f["name"]] = _convert(f["kind"], text)
    return out


def _convert(kind: str, text: str) -> Any:
    value = text.strip()
    with contextlib.suppress(ValueError):
        if kind == "integer":
            return int(value)
        if kind == "number":
            number = float(value)
            return number if math.isfinite(number) else text
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
    if kind in ("object", "array", "json"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return text
    return text if kind == "string" else value
