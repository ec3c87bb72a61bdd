"""Arguments from a model in OpenAI strict mode, made fit for the action's real schema.

Strict mode makes every optional property required and nullable
(:mod:`patchwire.tools._openai_strict`) and cannot tell "absent" from ``null``, so a model
sends ``null`` for what it leaves out. :func:`drop_strict_nulls` takes those nulls away again
before a tool call goes on (:class:`~patchwire.tools.ToolInvoker`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchwire.tools._schema_common import plain_copy
from patchwire.tools._schema_refs import inline_refs

__all__ = ["drop_strict_nulls"]


def drop_strict_nulls(schema: Mapping[str, Any], arguments: Mapping[str, Any]
                      ) -> dict[str, Any]:
    """``arguments`` from a strict-mode model made fit for the action's real ``schema``:
    ``null`` values of properties that ``schema`` does not require are removed, in nested
    objects and arrays too. A ``null`` for a required property is kept (the schema decides
    whether it is allowed)."""
    cleaned = _drop_nulls(inline_refs(schema), plain_copy(arguments))
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
