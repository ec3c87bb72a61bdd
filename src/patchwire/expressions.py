"""JSONata expressions: compiled once, evaluated many times, bounded in time and depth.

The evaluator is ``jsonata-python`` (a pure-Python port of the reference implementation).
Plain field paths (``data``, ``meta.next_cursor``, ``$``) are the most common mappings in
connectors and sit on the hot call path, so they are evaluated directly when every step
lands on an object; anything else — or a path that meets an array, where JSONata's
mapping semantics apply — goes through the full evaluator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonata
from jsonata.functions import Functions

from patchwire.errors import PatchwireError

__all__ = ["Expression", "ExpressionError", "compile_expression", "truthy"]

#: JSONata's literals look like field names but are not paths
_NOT_LITERAL = r"(?!(?:true|false|null)\b)"
_SIMPLE_PATH = re.compile(
    rf"^\s*(?:\$|{_NOT_LITERAL}[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")
_PATH_SRC = rf"(?:\$|{_NOT_LITERAL})[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_KEY_SRC = r"(?:'[^'\\]*'|\"[^\"\\]*\")"
#: ``{'id': $steps.order.id, 'email': customer.email}``: an object of paths (flows' most
#: common transform), evaluated field by field without the full evaluator
_OBJECT_OF_PATHS = re.compile(
    rf"^\s*\{{\s*(?:{_KEY_SRC}\s*:\s*{_PATH_SRC}\s*(?:,\s*{_KEY_SRC}\s*:\s*{_PATH_SRC}\s*)*)?\}}\s*$")
_OBJECT_FIELD = re.compile(rf"({_KEY_SRC})\s*:\s*({_PATH_SRC})")
#: ``$steps.lookup.id``: a path from a bound variable (flows use these all the time)
_VARIABLE_PATH = re.compile(r"^\s*\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")
_MISSING = object()
DEFAULT_TIMEOUT_MS = 1000
DEFAULT_MAX_DEPTH = 200


class ExpressionError(PatchwireError):
    """A JSONata expression does not compile or failed while evaluating."""

    code = "expression_error"


class Expression:
    """A compiled JSONata expression."""

    __slots__ = ("_compiled", "_fields", "_path", "_variable", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._path: tuple[str, ...] | None = None
        self._variable: tuple[str, tuple[str, ...]] | None = None
        stripped = source.strip()
        if _SIMPLE_PATH.match(stripped):
            self._path = () if stripped == "$" else tuple(stripped.split("."))
        elif (m := _VARIABLE_PATH.match(stripped)) is not None:
            self._variable = (m.group(1), tuple(m.group(2).split(".")[1:]))
        self._fields: list[tuple[str, str | None, tuple[str, ...]]] | None = None
        if _OBJECT_OF_PATHS.match(stripped):
            self._fields = []
            for key, path in _OBJECT_FIELD.findall(stripped):
                parts = path.split(".")
                variable = parts[0][1:] if parts[0].startswith("$") else None
                self._fields.append((key[1:-1], variable,
                                     tuple(parts[1:] if variable is not None else parts)))
        try:
            self._compiled = jsonata.Jsonata(source)
        except Exception as exc:  # the library raises JException (a RuntimeError) and others
            raise ExpressionError(f"invalid JSONata {source!r}: {exc}") from exc

    def evaluate(self, data: Any, bindings: Mapping[str, Any] | None = None) -> Any:
        if self._fields is not None:
            built = self._object(data, bindings or {})
            if built is not _MISSING:
                return built
        if self._path is not None and not bindings:
            value = _walk(data, self._path)
            if value is not _MISSING:
                return value
        elif self._variable is not None and bindings:
            name, path = self._variable
            if name in bindings:
                value = _walk(bindings[name], path) if path else bindings[name]
                if value is not _MISSING and not (not path and isinstance(value, list)):
                    return value
        try:
            # jsonata-python starts its time box when bounds are set, not per evaluation,
            # so the bounds are set anew for every evaluation.
            self._compiled.environment.set_runtime_bounds(DEFAULT_TIMEOUT_MS, DEFAULT_MAX_DEPTH)
            return self._compiled.evaluate(data, dict(bindings) if bindings else None)
        except Exception as exc:
            raise ExpressionError(f"JSONata {self.source!r} failed: {exc}") from exc

    def _object(self, data: Any, bindings: Mapping[str, Any]) -> Any:
        assert self._fields is not None
        out: dict[str, Any] = {}
        for key, variable, path in self._fields:
            if variable is not None:
                if variable == "" or variable not in bindings:
                    return _MISSING  # `$` alone, or an unknown variable: the evaluator decides
                value = _walk_defined(bindings[variable], path)
            else:
                value = _walk_defined(data, path)
            if value is _MISSING:
                return _MISSING
            if value is not _UNDEFINED:  # JSONata leaves out fields whose value is undefined
                out[key] = value
        return out

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _walk(data: Any, path: tuple[str, ...]) -> Any:
    """Follow a dotted path through objects; ``_MISSING`` means 'let JSONata decide'."""
    current = data
    for key in path:
        if not isinstance(current, dict):
            return _MISSING
        current = current.get(key)
        if current is None:
            return None
    # A list at the end is returned whole by JSONata too, except singletons and nested
    # arrays, which JSONata flattens: defer those to the evaluator.
    if isinstance(current, list) and path and (len(current) <= 1 or _has_list(current)):
        return _MISSING
    return current


_UNDEFINED = object()


def _walk_defined(data: Any, path: tuple[str, ...]) -> Any:
    """Like ``_walk``, telling a missing field (``_UNDEFINED``) from a JSON null."""
    current = data
    for key in path:
        if not isinstance(current, dict):
            return _MISSING if isinstance(current, list) else _UNDEFINED
        if key not in current:
            return _UNDEFINED
        current = current[key]
    if isinstance(current, list) and (len(current) <= 1 or _has_list(current)):
        return _MISSING
    return current


def _has_list(items: list[Any]) -> bool:
    return any(isinstance(i, list) for i in items)


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Compile (and cache) an expression; raises :class:`ExpressionError`."""
    return Expression(source)


def truthy(value: Any) -> bool:
    """JSONata's boolean cast (``$boolean``), what ``if``, ``when`` and filters test:
    empty strings, arrays and objects, 0 and null are false; an array is true when a
    member is."""
    return bool(Functions.to_boolean(value))
