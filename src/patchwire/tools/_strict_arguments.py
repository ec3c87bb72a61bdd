"""Arguments from a model in OpenAI strict mode, made fit for the action's real schema.

Strict mode makes every optional property required and nullable
(:mod:`patchwire.tools._openai_strict`) and cannot tell "absent" from ``null``, so a model
sends ``null`` for what it leaves out. :func:`drop_strict_nulls` takes those nulls away again
before a tool call goes on (:class:`~patchwire.tools.ToolInvoker`).

What strict mode cannot say is encoded in the OpenAI definitions, and
:func:`strict_arguments` (what the invoker calls) decodes it as well, before the action's
own validation:

    * a string where the real schema admits no string but an object or array: the JSON the
      definition asked for, parsed (bounded: :data:`MAX_JSON_CHARS` characters,
      :data:`MAX_JSON_DEPTH` levels, no duplicate keys, no ``__proto__`` key, no NaN);
    * a list of ``{key, value}`` pairs where the real schema admits an object but no array:
      a map, made one object again (a key given twice is refused);
    * ``{"json": "..."}`` where the real schema admits any value: the object or array
      written in it.

Every rule applies only to a value the real schema would refuse, or (the last) to the one
exact shape the definition names, so arguments written for the real schema — MCP's,
Anthropic's — pass through unchanged. What cannot be decoded is an
:class:`~patchwire.errors.InputValidationError` naming the argument and why; the value itself
is never repeated (it may hold a secret).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from patchwire.errors import InputValidationError, ValidationProblem
from patchwire.tools._schema_common import JSON_WRAPPER_KEY, admits, plain_copy
from patchwire.tools._schema_refs import inline_refs

__all__ = ["MAX_JSON_CHARS", "MAX_JSON_DEPTH", "drop_strict_nulls", "strict_arguments"]

MAX_JSON_CHARS = 256 * 1024
"""The longest JSON string argument decoded (characters)."""
MAX_JSON_DEPTH = 64
"""The deepest nesting of objects and arrays in a JSON string argument."""

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
# keys that pollute a JavaScript upstream's object prototype when it merges what it is sent
_REFUSED_KEYS = frozenset({"__proto__"})


def drop_strict_nulls(schema: Mapping[str, Any], arguments: Mapping[str, Any]
                      ) -> dict[str, Any]:
    """``arguments`` from a strict-mode model made fit for the action's real ``schema``:
    ``null`` values of properties that ``schema`` does not require are removed, in nested
    objects and arrays too. A ``null`` for a required property is kept (the schema decides
    whether it is allowed)."""
    cleaned = _Fit(decode=False).value(inline_refs(schema), plain_copy(arguments), [])
    return cleaned if isinstance(cleaned, dict) else dict(arguments)


def strict_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]
                     ) -> dict[str, Any]:
    """:func:`drop_strict_nulls`, and the strict-mode encodings decoded (module docstring).

    Raises :class:`~patchwire.errors.InputValidationError` for an encoded argument that
    cannot be decoded."""
    cleaned = _Fit(decode=True).value(inline_refs(schema), plain_copy(arguments), [])
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


def _where(path: list[str | int]) -> str:
    """``$.a.b[0]``, as validation problems name where a value is."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _refuse(path: list[str | int], message: str) -> NoReturn:
    raise InputValidationError([ValidationProblem(_where(path), message)])


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in _REFUSED_KEYS:
            raise ValueError(f"the key {key!r} is not accepted")
        if key in out:
            raise ValueError(f"the key {json.dumps(key)[:80]} is given twice")
        out[key] = value
    return out


def _parse_json(text: str, path: list[str | int], what: str) -> Any:
    """``text`` parsed as the JSON ``what`` the strict-mode definition asked for."""
    if len(text) > MAX_JSON_CHARS:
        _refuse(path, f"must be {what} written as JSON of at most {MAX_JSON_CHARS} "
                      f"characters; this one has {len(text)}")
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                _refuse(path, f"must be {what} written as JSON nested at most "
                              f"{MAX_JSON_DEPTH} levels deep")
        elif mark in "]}":
            depth -= 1
    try:
        return json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        _refuse(path, f"must be {what} written as JSON; it is not valid JSON ({exc.msg} at "
                      f"line {exc.lineno} column {exc.colno})")
    except (ValueError, RecursionError) as exc:
        _refuse(path, f"must be {what} written as JSON; {exc}")


class _Fit:
    """One pass over the arguments beside the real schema (refs inlined)."""

    def __init__(self, *, decode: bool) -> None:
        self.decode = decode

    def value(self, schema: Any, value: Any, path: list[str | int]) -> Any:
        if self.decode:
            decoded, value = self.decoded(schema, value, path)
            if decoded:
                return value
        views = _views(schema)
        if not views:
            return value
        if isinstance(value, dict):
            return self.object(schema, views, value, path)
        if isinstance(value, list):
            prefix: list[Any] = []
            items: list[Any] = []
            for view in views:
                if isinstance(view.get("prefixItems"), list) and not prefix:
                    prefix = view["prefixItems"]
                if isinstance(view.get("items"), dict):
                    items.append(view["items"])
            rest = _joined(items) if items else None
            return [self.value(prefix[i] if i < len(prefix) else rest, x, [*path, i])
                    for i, x in enumerate(value)]
        return value

    def object(self, schema: Any, views: list[dict[str, Any]], value: dict[str, Any],
               path: list[str | int]) -> dict[str, Any]:
        required = _required_keys(schema)
        props: dict[str, list[Any]] = {}
        extra: list[Any] = []
        closed = False
        for view in views:
            for name, sub in (view.get("properties") or {}).items():
                props.setdefault(name, []).append(sub)
            if isinstance(view.get("additionalProperties"), dict):
                extra.append(view["additionalProperties"])
            closed = closed or view.get("additionalProperties") is False
        out: dict[str, Any] = {}
        for name, item in value.items():
            subs = props.get(name)
            if subs is not None:
                if item is None and name not in required:
                    continue
                out[name] = self.value(_joined(subs), item, [*path, name])
            elif extra:
                out[name] = self.value(_joined(extra), item, [*path, name])
            elif self.decode and name in required and not closed:
                # a required key the schema names without describing: strict mode offered
                # it as a value of any type
                out[name] = self.value(True, item, [*path, name])
            else:
                out[name] = item
        return out

    def decoded(self, schema: Any, value: Any, path: list[str | int]) -> tuple[bool, Any]:
        """``(True, the value)`` when ``value`` is a strict-mode encoding ``schema`` asks to
        decode, else ``(False, value)``."""
        if isinstance(value, str):
            if admits(schema, "string"):
                return False, value
            wants_object = admits(schema, "object")
            if not wants_object and not admits(schema, "array"):
                return False, value
            what = "an object" if wants_object else "an array"
            return True, _parse_json(value, path, what)
        if isinstance(value, list):
            if admits(schema, "array") or not admits(schema, "object") or not all(
                    isinstance(p, dict) and "key" in p and set(p) <= {"key", "value"}
                    for p in value):
                return False, value
            out: dict[str, Any] = {}
            for i, pair in enumerate(value):
                key = pair["key"]
                if not isinstance(key, str):
                    _refuse([*path, i, "key"], "must be a string (the key of a pair)")
                if key in _REFUSED_KEYS:
                    _refuse([*path, i, "key"], f"the key {key!r} is not accepted")
                if key in out:
                    _refuse([*path, i, "key"], "this key is given twice in the pairs")
                out[key] = pair.get("value")
            return False, out  # its values still go through the map's value schema
        if isinstance(value, dict) and set(value) == {JSON_WRAPPER_KEY} and isinstance(
                value[JSON_WRAPPER_KEY], str) and self.any_value(schema):
            text = value[JSON_WRAPPER_KEY].strip()
            if text.startswith(("{", "[")):
                return True, _parse_json(text, [*path, JSON_WRAPPER_KEY],
                                         "an object or array")
        return False, value

    @staticmethod
    def any_value(schema: Any) -> bool:
        """Whether ``schema`` takes a value of any type and has no property of the
        wrapper's name (which would make ``{"json": ...}`` one of its own values)."""
        if not all(admits(schema, t) for t in ("string", "number", "object", "array")):
            return False
        return not any(JSON_WRAPPER_KEY in (v.get("properties") or {}) for v in _views(schema))
