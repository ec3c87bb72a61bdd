"""Valid arguments for an action, made from its input JSON Schema: what a model that read
the schema would send. Deterministic (the same schema gives the same arguments), so a
failure names a request that can be made again.

``example_arguments(schema)`` gives the required properties only; ``full=True`` every
declared property as well. Enums, consts, patterns (any regular expression Python reads),
formats, lengths and bounds are respected; ``examples``/``default`` are used when valid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Python's own regular-expression parser: a pattern is generated from the syntax tree the
# engine itself would match with, not from a second reading of the syntax
from re import _parser as sre
from typing import Any

import jsonschema

__all__ = ["example_arguments", "example_string", "string_for_pattern"]

_FORMATS: dict[str, str] = {
    "email": "alex@example.com",
    "idn-email": "alex@example.com",
    "date": "2026-01-15",
    "date-time": "2026-01-15T09:30:00Z",
    "time": "09:30:00Z",
    "uri": "https://example.com/a",
    "url": "https://example.com/a",
    "iri": "https://example.com/a",
    "uri-reference": "https://example.com/a",
    "uuid": "0b5a6a4e-6a3c-4f0e-9f6e-2d1c6b7a8e90",
    "hostname": "example.com",
    "ipv4": "192.0.2.10",
    "ipv6": "2001:db8::10",
    "duration": "P1D",
    "byte": "ZXhhbXBsZQ==",
    "binary": "example",
    "password": "example-Passw0rd",
    "phone": "+14155550123",
    "int32": "1",
    "int64": "1",
}

_CATEGORY = {
    sre.CATEGORY_DIGIT: "1",
    sre.CATEGORY_NOT_DIGIT: "a",
    sre.CATEGORY_WORD: "a",
    sre.CATEGORY_NOT_WORD: "-",
    sre.CATEGORY_SPACE: " ",
    sre.CATEGORY_NOT_SPACE: "a",
}


def _pick_in(items: list[tuple[Any, Any]]) -> str:
    """A character a ``[...]`` class admits: letters and digits first, for readable ids."""
    negated = any(op == sre.NEGATE for op, _ in items)
    if negated:
        banned = _class_chars(items)
        for ch in "aA1_-":
            if ch not in banned:
                return ch
        return "z"
    candidates: list[str] = []
    for op, av in items:
        if op == sre.LITERAL:
            candidates.append(chr(av))
        elif op == sre.RANGE:
            low, high = av
            for preferred in "a1A":
                if low <= ord(preferred) <= high:
                    candidates.append(preferred)
            candidates.append(chr(low))
        elif op == sre.CATEGORY:
            candidates.append(_CATEGORY.get(av, "a"))
    for ch in candidates:
        if ch.isalnum():
            return ch
    return candidates[0] if candidates else "a"


def _class_chars(items: list[tuple[Any, Any]]) -> set[str]:
    chars: set[str] = set()
    for op, av in items:
        if op == sre.LITERAL:
            chars.add(chr(av))
        elif op == sre.RANGE:
            chars.update(chr(c) for c in range(av[0], min(av[1], av[0] + 256) + 1))
    return chars


def _emit(tokens: Any, out: list[str], groups: dict[int, str], extra: int) -> None:
    for op, av in tokens:
        if op == sre.LITERAL:
            out.append(chr(av))
        elif op == sre.NOT_LITERAL:
            out.append("a" if av != ord("a") else "b")
        elif op == sre.ANY:
            out.append("a")
        elif op == sre.IN:
            out.append(_pick_in(list(av)))
        elif op == sre.CATEGORY:
            out.append(_CATEGORY.get(av, "a"))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", None)):
            low, high, sub = av
            # one more than the least a repeat needs (when it may), so `[a-z]+` reads
            # like a word part: `ab` rather than `a`
            count = low if high == low else min(max(low, 1) + extra, high)
            for _ in range(count):
                _emit(sub, out, groups, extra)
        elif op in (sre.SUBPATTERN, getattr(sre, "ATOMIC_GROUP", None)):
            sub = av[-1] if op == sre.SUBPATTERN else av
            start = len(out)
            _emit(sub, out, groups, extra)
            if op == sre.SUBPATTERN and av[0] is not None:
                groups[av[0]] = "".join(out[start:])
        elif op == sre.BRANCH:
            _emit(av[1][0], out, groups, extra)
        elif op == sre.GROUPREF:
            out.append(groups.get(av, ""))
        elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            continue  # anchors and look-arounds add no characters
        elif op == sre.GROUPREF_EXISTS:
            _emit(av[1], out, groups, extra)


def string_for_pattern(pattern: str, min_length: int = 0, max_length: int | None = None) -> str:
    """A string that ``re.search(pattern, s)`` finds, within the length bounds when the
    pattern allows; raises ValueError when none of the tries matches."""
    parsed = sre.parse(pattern)
    for extra in (1, 0, 3, 8, 20):
        out: list[str] = []
        _emit(parsed, out, {}, extra)
        text = "".join(out)
        if re.search(pattern, text) and len(text) >= min_length and (
                max_length is None or len(text) <= max_length):
            return text
    raise ValueError(f"no example found for pattern {pattern!r}")


def example_string(schema: Mapping[str, Any], name: str = "") -> str:
    """A string the schema admits, readable: a pattern's, a format's, else a word."""
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    pattern = schema.get("pattern")
    fmt = schema.get("format")
    formatted = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if isinstance(pattern, str) and not (formatted and re.search(pattern, formatted)):
        return string_for_pattern(pattern, low, high)
    text = formatted or (f"example-{name.replace('_', '-')}" if name else "example")
    if len(text) < low:
        text = text + "x" * (low - len(text))
    if high is not None and len(text) > int(high):
        text = text[: int(high)]
    return text


def _number(schema: Mapping[str, Any], integer: bool) -> int | float:
    low = schema.get("minimum")
    ex_low = schema.get("exclusiveMinimum")
    high = schema.get("maximum")
    ex_high = schema.get("exclusiveMaximum")
    value: float = 1
    if isinstance(low, int | float):
        value = max(value, low)
    if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
        value = max(value, ex_low + 1)
    if isinstance(high, int | float):
        value = min(value, high)
    if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
        value = min(value, ex_high - 1)
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step:
        value = step * max(1, round(value / step))
    return int(value) if integer else float(value)


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return [k for k in kind if k != "null"] or ["null"]
    if isinstance(kind, str):
        return [kind]
    if "properties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    return ["string"]


def _given(schema: Mapping[str, Any]) -> tuple[bool, Any]:
    """A value the schema itself offers and admits: const, an example, the default."""
    if "const" in schema:
        return True, schema["const"]
    candidates: list[Any] = []
    if isinstance(schema.get("examples"), list):
        candidates += schema["examples"]
    if "example" in schema:
        candidates.append(schema["example"])
    if "default" in schema:
        candidates.append(schema["default"])
    for value in candidates:
        if value is not None and _admits(schema, value):
            return True, value
    return False, None


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema with a local ``$ref`` (``#/$defs/address``) replaced by its target."""
    seen = 0
    while isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/") and seen < 32:
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _admits(schema: Mapping[str, Any], value: Any) -> bool:
    try:
        return bool(jsonschema.Draft202012Validator(dict(schema)).is_valid(value))
    except (jsonschema.exceptions.RefResolutionError, jsonschema.exceptions.SchemaError):
        return False  # a $ref this part of the schema cannot resolve on its own


def _value(schema: Mapping[str, Any], name: str, full: bool, depth: int,
           root: Mapping[str, Any]) -> Any:
    schema = _resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        branches = [b for b in schema.get(key) or [] if b.get("type") != "null"]
        if branches:
            return _value({**{k: v for k, v in schema.items() if k != key}, **branches[0]},
                          name, full, depth, root)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged.update(_resolve(part, root))
        return _value(merged, name, full, depth, root)
    if isinstance(schema.get("enum"), list):
        choices = [v for v in schema["enum"] if v is not None]
        return choices[0] if choices else None
    found, value = _given(schema)
    if found:
        return value
    kind = _types(schema)[0]
    if kind == "string":
        return example_string(schema, name)
    if kind == "integer":
        return _number(schema, True)
    if kind == "number":
        return _number(schema, False)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), Mapping) else {}
        count = max(1, int(schema.get("minItems", 1)))
        first = _value(items, name.removesuffix("s"), full, depth + 1, root)
        values = [first]
        while len(values) < count:
            values.append(_distinct(first, len(values)))
        return values
    if kind == "object":
        return _object(schema, full, depth, root)
    return "example"


def _distinct(value: Any, n: int) -> Any:
    """Another array item (uniqueItems)."""
    if isinstance(value, str):
        return f"{value}{n}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value + n
    return value


def _object(schema: Mapping[str, Any], full: bool, depth: int,
            root: Mapping[str, Any]) -> dict[str, Any]:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = [n for n in schema.get("required") or [] if n in properties]
    # below the top, a full example still keeps nested objects small
    names = list(properties) if full and depth == 0 else required
    if full and depth > 0:
        names = required + [n for n in properties if n not in required][:3]
    made = {n: _value(properties[n], n, full, depth + 1, root) for n in names}
    # a map (additionalProperties: a schema) with a least size: keys of its own
    extra = schema.get("additionalProperties")
    count = int(schema.get("minProperties", 0))
    for n in range(len(made), count):
        value_schema = extra if isinstance(extra, Mapping) else {}
        made[f"key{n + 1}"] = _value(value_schema, "value", full, depth + 1, root)
    return made


def example_arguments(schema: Mapping[str, Any], *, full: bool = False) -> dict[str, Any]:
    """Arguments valid for an action's input schema: its required properties, or with
    ``full`` every property it declares. Checked against the schema before they are given."""
    arguments = _object(schema, full, 0, schema)
    # the instance only: checking each schema against the metaschema would be 95% of the time
    validator = jsonschema.Draft202012Validator(
        dict(schema), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(arguments)
    return arguments
