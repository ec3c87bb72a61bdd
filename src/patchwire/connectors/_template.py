"""``{placeholder}`` templates used in base URLs, auth values and request templates.

``{name}`` and ``{a.b}`` read from a mapping; ``{{`` and ``}}`` are literal braces. A
template that is exactly one placeholder renders to the value itself (keeping its JSON
type), so ``body: {amount: "{amount}"}`` sends a number, and a key whose value is missing
is dropped. Templates are parsed once and rendered many times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MISSING", "Template", "compile_template", "placeholder_parts", "placeholders_in"]

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Template:
    __slots__ = ("_format", "_literal", "_paths", "names", "single", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        parts: list[str | tuple[str, ...]] = []
        pos = 0
        for m in _TOKEN.finditer(source):
            if m.start() > pos:
                parts.append(source[pos : m.start()])
            tok = m.group(0)
            if tok in ("{{", "}}"):
                parts.append(tok[0])
            else:
                parts.append(tuple(m.group(1).split(".")))
            pos = m.end()
        if pos < len(source):
            parts.append(source[pos:])

        self.names: tuple[str, ...] = tuple(
            ".".join(p) for p in parts if isinstance(p, tuple)
        )
        self.single: tuple[str, ...] | None = (
            parts[0] if len(parts) == 1 and isinstance(parts[0], tuple) else None
        )
        # Rendering is one str.format over the placeholder values: templates are rendered
        # on every call, parsed once.
        self._paths = [p for p in parts if isinstance(p, tuple)]
        self._format = "".join(
            "{}" if isinstance(p, tuple) else p.replace("{", "{{").replace("}", "}}")
            for p in parts
        )
        self._literal = "".join(p for p in parts if isinstance(p, str))

    def render(
        self, values: Mapping[str, Any], *, encode: Callable[[str], str] | None = None
    ) -> Any:
        """Render; returns ``MISSING`` when a placeholder has no value."""
        if self.single is not None:
            return lookup(values, self.single)
        if not self._paths:
            return self._literal
        texts = []
        for path in self._paths:
            value = lookup(values, path)
            if value is MISSING or value is None:
                return MISSING
            text = _stringify(value)
            texts.append(encode(text) if encode else text)
        return self._format.format(*texts)


def lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    if len(path) == 1:
        return values.get(path[0], MISSING) if isinstance(values, Mapping) else MISSING
    current: Any = values
    for key in path:
        if not isinstance(current, Mapping) or key not in current:
            return MISSING
        current = current[key]
    return current


def _stringify(value: Any) -> str:
    if value.__class__ is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_cache: dict[str, Template] = {}


def compile_template(source: str) -> Template:
    tpl = _cache.get(source)
    if tpl is None:
        tpl = _cache[source] = Template(source)
    return tpl


def placeholders_in(value: Any) -> set[str]:
    """Every placeholder name in a (nested) template value."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(compile_template(value).names)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            found |= placeholders_in(k) if isinstance(k, str) else set()
            found |= placeholders_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= placeholders_in(v)
    return found


def placeholder_parts(source: str) -> list[tuple[bool, str]]:
    """A template as (is_placeholder, text) in order: literal text (braces unescaped) and
    placeholder names."""
    parts: list[tuple[bool, str]] = []
    pos = 0
    for m in _TOKEN.finditer(source):
        if m.start() > pos:
            parts.append((False, source[pos : m.start()]))
        tok = m.group(0)
        parts.append((False, tok[0]) if tok in ("{{", "}}") else (True, m.group(1)))
        pos = m.end()
    if pos < len(source):
        parts.append((False, source[pos:]))
    merged: list[tuple[bool, str]] = []
    for part in parts:  # one literal between two placeholders, even around "{{"
        if merged and not part[0] and not merged[-1][0]:
            merged[-1] = (False, merged[-1][1] + part[1])
        else:
            merged.append(part)
    return merged
