"""Local ``$ref``s inlined: the first step of every provider's tool definition.

An action's input is JSON Schema 2020-12 (object at the root, maybe with local ``$ref``s into
``$defs``, maybe recursive). Every converter starts from :func:`inline_refs`: a recursive
reference is expanded :data:`RECURSION_DEPTH` times on a path, then replaced by a stand-in (an
empty closed object, or an empty list of them) whose ``description`` says the structure is cut
off. The stand-in satisfies every provider's rules (:mod:`patchwire.tools._provider_rules`),
OpenAI strict mode included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from patchwire.tools._schema_common import ANNOTATIONS, plain_copy, types_of

__all__ = ["RECURSION_DEPTH", "inline_refs"]

RECURSION_DEPTH = 3
"""How many times one recursive ``$ref`` is expanded on a path before the stand-in."""

# Where subschemas live, by keyword (2020-12 plus the draft-07 spellings OpenAPI imports use).
_ONE_SCHEMA = frozenset({
    "items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema",
})
_SCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs", "definitions",
                         "dependentSchemas"})
_SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})


def inline_refs(schema: Mapping[str, Any], *, max_depth: int = RECURSION_DEPTH) -> dict[str, Any]:
    """A copy of ``schema`` with every local ``$ref`` inlined and ``$defs``/``definitions``
    removed.

    References are JSON pointers into the document (``#/$defs/a~1b`` is ``$defs["a/b"]``,
    percent-escapes are decoded, ``#`` is the root). Keywords beside a ``$ref`` are kept
    (2020-12 applies both): they are merged into the target when they agree with it (their
    annotations — description, title, default... — win) and joined with ``allOf`` otherwise.
    A reference met again inside its own expansion is expanded ``max_depth`` times on that
    path, then replaced by a stand-in that describes the cut. A reference that cannot be
    resolved (not local, or pointing nowhere) raises :class:`ValueError`.
    """
    root = plain_copy(schema)
    out = _Inliner(root, max_depth).schema(root, ())
    if not isinstance(out, dict):  # pragma: no cover - a mapping root stays a mapping
        raise ValueError("the schema's root must be an object")
    return out


class _Inliner:
    def __init__(self, root: Any, max_depth: int) -> None:
        self.root = root
        self.max_depth = max_depth

    def schema(self, node: Any, stack: tuple[str, ...]) -> Any:
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return self.children(node, stack)
        if not ref.startswith("#"):
            raise ValueError(f"cannot inline the non-local $ref {ref!r}")
        target: Any
        if stack.count(ref) >= self.max_depth:
            target = self.stand_in(ref)
        else:
            target = self.schema(self.resolve(ref), (*stack, ref))
        siblings = self.children({k: v for k, v in node.items() if k != "$ref"}, stack)
        return _with_siblings(target, siblings)

    def children(self, node: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("$defs", "definitions"):
                continue
            if key in _ONE_SCHEMA and isinstance(value, dict | bool):
                out[key] = self.schema(value, stack)
            elif key in _ONE_SCHEMA and key == "items" and isinstance(value, list):
                out[key] = [self.schema(v, stack) for v in value]
            elif key in _SCHEMA_MAP and isinstance(value, dict):
                out[key] = {k: self.schema(v, stack) for k, v in value.items()}
            elif key in _SCHEMA_LIST and isinstance(value, list):
                out[key] = [self.schema(v, stack) for v in value]
            elif key == "dependencies" and isinstance(value, dict):
                out[key] = {k: self.schema(v, stack) if isinstance(v, dict | bool)
                            else plain_copy(v) for k, v in value.items()}
            else:
                out[key] = plain_copy(value)
        return out

    def resolve(self, ref: str) -> Any:
        fragment = ref[1:]
        node: Any = self.root
        if fragment in ("", "/"):
            return node
        if not fragment.startswith("/"):
            raise ValueError(f"cannot inline the $ref {ref!r}: only JSON-pointer fragments")
        for raw in fragment[1:].split("/"):
            token = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise ValueError(f"the $ref {ref!r} points nowhere")
        return node

    def stand_in(self, ref: str) -> dict[str, Any]:
        target = self.resolve(ref)
        label = ref.rsplit("/", 1)[-1] if "/" in ref else "root"
        label = unquote(label).replace("~1", "/").replace("~0", "~") or "root"
        if isinstance(target, dict) and isinstance(target.get("title"), str):
            label = target["title"]
        cut = (f"The recursive structure {label!r} is cut off here after {self.max_depth} "
               "levels; deeper levels cannot be sent through this tool.")
        empty: dict[str, Any] = {"type": "object", "properties": {}, "required": [],
                                 "additionalProperties": False}
        if isinstance(target, dict) and types_of(target) == ["array"]:
            return {"type": "array", "items": empty, "maxItems": 0,
                    "description": cut + " Send an empty list."}
        return {**empty, "description": cut + " Send an empty object."}


def _with_siblings(target: Any, siblings: dict[str, Any]) -> Any:
    if not siblings:
        return target
    if target is True or target == {}:
        return siblings
    if not isinstance(target, dict):
        return {"allOf": [target, siblings]}
    merged = dict(target)
    conflict = False
    for key, value in siblings.items():
        if key in ANNOTATIONS or key not in merged or merged[key] == value:
            merged[key] = value
        else:
            conflict = True
    if not conflict:
        return merged
    notes = {k: v for k, v in siblings.items() if k in ANNOTATIONS}
    rest = {k: v for k, v in siblings.items() if k not in ANNOTATIONS}
    return {**notes, "allOf": [target, rest]}

