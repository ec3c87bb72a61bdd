"""Local ``$ref``s inlined: the first step of every provider's tool definition.

An action's input is JSON Schema 2020-12 (object at the root, maybe with local ``$ref``s into
``$defs``, maybe recursive). Every converter starts from :func:`inline_refs`: a recursive
reference is expanded :data:`RECURSION_DEPTH` times on a path, then replaced by a stand-in (an
empty closed object, or an empty list of them) whose ``description`` says the structure is cut
off. The stand-in satisfies every provider's rules (:mod:`patchwire.tools._provider_rules`),
OpenAI strict mode included.

Depth alone does not bound the size. Xero's accounting API has dozens of mutually recursive
schemas, and expanding each of them three times on every path made one action's input
hundreds of megabytes; DocuSign's importer output shares one schema object in thousands of
places (a DAG, small in memory), which a copy turns into a tree of 60 MB per action. So the
output has a budget as well: it is built breadth first (what is near the root is kept whole),
reading the input only as far as it is copied, and once it is :data:`MAX_INLINED_SIZE`
characters of JSON, or a subschema is :data:`MAX_SCHEMA_NESTING` levels deep, what is left is
replaced by open stand-ins of the same type (``{"type": "object", "description": "... not
shown in full (see 'Contact') ..."}``). A model may put anything there — OpenAI strict mode
asks for it as a JSON string, decoded again before the call by
:mod:`patchwire.tools._strict_arguments`, which inlines the same way — and the action's own
validation, against the real schema, still checks it. The work is linear in the output
(bounded) plus the input read, so a hostile or merely large description can neither hang the
process nor exhaust its memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from patchwire.tools._schema_common import (
    ANNOTATIONS,
    JSON_TYPES,
    append_sentence,
    trim_text,
    types_of,
)

__all__ = ["MAX_INLINED_SIZE", "MAX_SCHEMA_NESTING", "RECURSION_DEPTH", "inline_refs"]

RECURSION_DEPTH = 3
"""How many times one recursive ``$ref`` is expanded on a path before the stand-in."""
MAX_INLINED_SIZE = 1_500_000
"""About how many characters of JSON an inlined schema may take before what is left of it is
replaced by stand-ins. The largest input among the descriptions in
tests/support/strict_corpus.py inlines to 1.28 million (Google Sheets' batch update) and
stays whole."""
MAX_SCHEMA_NESTING = 64
"""How many subschemas deep the output may go (the corpus's deepest is about 40), so that it
stays shallow enough for every converter after this one."""

# Where subschemas live, by keyword (2020-12 plus the draft-07 spellings OpenAPI imports use).
_ONE_SCHEMA = frozenset({
    "items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema",
})
_SCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs", "definitions",
                         "dependentSchemas"})
_SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_DEFINITIONS = ("$defs", "definitions")
_STAND_IN_SIZE = 400  # at most what one stand-in adds to the output (its note, a description)
_MIN_VALUE_LIMIT = 20_000  # one keyword's value (an enum...) may take this much past the budget


def inline_refs(schema: Mapping[str, Any], *, max_depth: int = RECURSION_DEPTH,
                max_size: int = MAX_INLINED_SIZE,
                max_nesting: int = MAX_SCHEMA_NESTING) -> dict[str, Any]:
    """A copy of ``schema`` with every local ``$ref`` inlined and ``$defs``/``definitions``
    removed.

    References are JSON pointers into the document (``#/$defs/a~1b`` is ``$defs["a/b"]``,
    percent-escapes are decoded, ``#`` is the root). Keywords beside a ``$ref`` are kept
    (2020-12 applies both): they are merged into the target when they agree with it (their
    annotations — description, title, default... — win) and joined with ``allOf`` otherwise.
    A reference met again inside its own expansion is expanded ``max_depth`` times on that
    path, then replaced by a stand-in that describes the cut.

    The copy is made breadth first. Once it is ``max_size`` characters of JSON, every subschema
    not yet copied (but the smallest) is replaced by an open stand-in of its type that says
    it is not shown, naming the reference it came from; so is one ``max_nesting`` subschemas
    deep. A keyword value bigger than what is left (an enum of thousands) is left out and
    named in the description. A reference that cannot be resolved (not local, or pointing
    nowhere) raises :class:`ValueError`.
    """
    out = _Inliner(schema, max_depth, max_size, max_nesting).run()
    if not isinstance(out, dict):  # pragma: no cover - a mapping root stays a mapping
        raise ValueError("the schema's root must be an object")
    return out


class _Slot:
    """Where one subschema stands in the output until the breadth-first pass copies it: a
    ``$ref`` (``ref`` set, its sibling keywords already copied) or any other schema
    (``node``)."""

    __slots__ = ("at_root", "key", "level", "node", "parent", "ref", "reserve", "siblings",
                 "stack", "value")

    def __init__(self, node: Mapping[str, Any], ref: str | None, stack: tuple[str, ...],
                 level: int) -> None:
        self.node = node
        self.ref = ref
        self.stack = stack  # the references expanded on the way here
        self.level = level  # how many subschemas deep
        self.siblings: dict[str, Any] = {}
        self.value: Any = None
        self.parent: dict[str, Any] | list[Any] | _Slot | None = None
        self.key: Any = None  # the index in a list or the key in a dict
        self.at_root = False
        self.reserve = 0  # what the budget keeps for it until it is filled


class _TooLarge(Exception):
    pass


class _Inliner:
    def __init__(self, root: Mapping[str, Any], max_depth: int, max_size: int,
                 max_nesting: int) -> None:
        self.root = root
        self.max_depth = max_depth
        self.max_size = max_size
        self.max_nesting = max_nesting
        self.used = 0  # characters of JSON produced so far, about
        # kept for the slots still pending: at least what each will cost, a stand-in or the
        # small subschema itself, so the budget is never promised twice
        self.reserved = 0
        self.pending: deque[_Slot] = deque()
        self.slots: list[_Slot] = []  # in the order made: a slot's descendants come after it
        self.targets: dict[str, Any] = {}

    def run(self) -> Any:
        out = self.place(self.schema(self.root, (), 0), None, None)
        while self.pending:
            slot = self.pending.popleft()
            slot.value = self.place(self.fill(slot), slot, None)
        # Descendants first: by the time a slot is replaced, everything inside it is final.
        for slot in reversed(self.slots):
            final = slot.value if slot.ref is None else _with_siblings(slot.value,
                                                                       slot.siblings)
            parent = slot.parent
            if parent is None:
                out = final
            elif isinstance(parent, _Slot):
                parent.value = final
            else:
                parent[slot.key] = final
        return out

    def fill(self, slot: _Slot) -> Any:
        """What ``slot`` holds: the subschema copied one level, or a stand-in."""
        self.reserved -= slot.reserve
        ref, stack = slot.ref, slot.stack
        if ref is not None and stack.count(ref) >= self.max_depth:
            return self.charged(self.cut_off(ref))
        node = slot.node if ref is None else self.resolve(ref)
        if not slot.at_root and isinstance(node, Mapping) and (
                slot.level >= self.max_nesting
                or self.used + self.reserved + self.shallow(node) > self.max_size):
            target = node if ref is None else self.final_target(ref)
            return self.charged(self.not_shown(target, ref))
        if ref is None:
            return self.children(node, stack, slot.level)
        return self.schema(node, (*stack, ref), slot.level)

    def charged(self, stand_in: dict[str, Any]) -> dict[str, Any]:
        self.used += _count(stand_in, 2 * _STAND_IN_SIZE)
        return stand_in

    def shallow(self, node: Mapping[str, Any]) -> int:
        """About what copying ``node`` one level costs: its own keywords, and what is kept
        for each of its subschemas."""
        if isinstance(node.get("$ref"), str):
            return _reserve_for(node)
        total = 2
        for key, value in node.items():
            key = str(key)
            total += len(key) + 4
            if key in _DEFINITIONS:
                continue
            parts = _subschemas(key, value)
            if parts is None:
                total += _count(value, self.max_size)
            else:
                total += 2 + sum(_reserve_for(part) for part in parts)
        return total

    @staticmethod
    def place(value: Any, parent: dict[str, Any] | list[Any] | _Slot | None,
              key: Any) -> Any:
        if isinstance(value, _Slot):
            value.parent, value.key = parent, key
            # the reference the whole input is (through aliases) is always expanded
            value.at_root = parent is None or (isinstance(parent, _Slot) and parent.at_root)
        return value

    def schema(self, node: Any, stack: tuple[str, ...], level: int) -> Any:
        """``node`` copied now if it is no reference, its subschemas left in slots."""
        if not isinstance(node, Mapping):
            return self.copy(node, "", [])
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self.defer(node, stack, level)
        return self.children(node, stack, level)

    def defer(self, node: Any, stack: tuple[str, ...], level: int) -> Any:
        """A slot for the subschema ``node`` (a boolean schema is copied now)."""
        if not isinstance(node, Mapping):
            return self.copy(node, "", [])
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise ValueError(f"cannot inline the non-local $ref {ref!r}")
        slot = _Slot(node, ref if isinstance(ref, str) else None, stack, level)
        slot.reserve = _reserve_for(node)
        self.reserved += slot.reserve
        self.slots.append(slot)
        self.pending.append(slot)
        if slot.ref is not None:
            # copied after the slot is made, so finished before it (run)
            slot.siblings = self.children({k: v for k, v in node.items() if k != "$ref"},
                                          stack, level)
        return slot

    def children(self, node: Mapping[str, Any], stack: tuple[str, ...], level: int
                 ) -> dict[str, Any]:
        self.used += 2 + sum(len(str(k)) + 4 for k in node)
        deeper = level + 1
        out: dict[str, Any] = {}
        left_out: list[str] = []
        for key, value in node.items():
            key = str(key)
            if key in _DEFINITIONS:
                continue
            if key in _ONE_SCHEMA and isinstance(value, Mapping | bool):
                out[key] = self.place(self.defer(value, stack, deeper), out, key)
            elif key in _SCHEMA_MAP and isinstance(value, Mapping):
                inner: dict[str, Any] = {}
                for name, sub in value.items():
                    inner[str(name)] = self.place(self.defer(sub, stack, deeper), inner,
                                                  str(name))
                out[key] = inner
            elif (key in _SCHEMA_LIST or key == "items") and isinstance(value, list | tuple):
                items: list[Any] = []
                for i, sub in enumerate(value):
                    items.append(self.place(self.defer(sub, stack, deeper), items, i))
                out[key] = items
            elif key == "dependencies" and isinstance(value, Mapping):
                deps: dict[str, Any] = {}
                for name, sub in value.items():
                    name = str(name)
                    if isinstance(sub, Mapping | bool):
                        deps[name] = self.place(self.defer(sub, stack, deeper), deps, name)
                    else:
                        deps[name] = self.copy(sub, key, left_out)
                out[key] = deps
            else:
                out[key] = self.copy(value, key, left_out)
        for key in left_out:
            out.pop(key, None)
        if left_out:
            names = ", ".join(f"`{k}`" for k in left_out)
            out["description"] = append_sentence(
                out.get("description") if isinstance(out.get("description"), str) else None,
                f"Not shown, too large: {names} (still checked when the tool is called).")
        return out

    def copy(self, value: Any, key: str, left_out: list[str]) -> Any:
        """A plain copy of the keyword value ``value``, or None (and ``key`` named in
        ``left_out``) when it is bigger than what is left of the budget."""
        limit = max(self.max_size - self.used - self.reserved, _MIN_VALUE_LIMIT)
        try:
            copied, size = _bounded_copy(value, limit)
        except (_TooLarge, RecursionError):
            if key not in left_out:
                left_out.append(key)
            return None
        self.used += size
        return copied

    def resolve(self, ref: str) -> Any:
        if ref in self.targets:
            return self.targets[ref]
        fragment = ref[1:]
        node: Any = self.root
        if fragment not in ("", "/"):
            if not fragment.startswith("/"):
                raise ValueError(f"cannot inline the $ref {ref!r}: only JSON-pointer fragments")
            for raw in fragment[1:].split("/"):
                token = unquote(raw).replace("~1", "/").replace("~0", "~")
                if isinstance(node, Mapping) and token in node:
                    node = node[token]
                elif (isinstance(node, list | tuple) and token.isdigit()
                      and int(token) < len(node)):
                    node = node[int(token)]
                else:
                    raise ValueError(f"the $ref {ref!r} points nowhere")
        self.targets[ref] = node
        return node

    def final_target(self, ref: str) -> Any:
        """What ``ref`` resolves to, through references that are only aliases."""
        target = self.resolve(ref)
        seen = {ref}
        while isinstance(target, Mapping) and isinstance(target.get("$ref"), str):
            alias = target["$ref"]
            if alias in seen or not alias.startswith("#"):
                break
            seen.add(alias)
            target = self.resolve(alias)
        return target

    @staticmethod
    def label(ref: str, target: Any) -> str:
        label = ref.rsplit("/", 1)[-1] if "/" in ref else "root"
        label = unquote(label).replace("~1", "/").replace("~0", "~") or "root"
        if isinstance(target, Mapping) and isinstance(target.get("title"), str):
            label = target["title"]
        return label

    def cut_off(self, ref: str) -> dict[str, Any]:
        target = self.resolve(ref)
        label = self.label(ref, target)
        cut = (f"The recursive structure {label!r} is cut off here after {self.max_depth} "
               "levels; deeper levels cannot be sent through this tool.")
        empty: dict[str, Any] = {"type": "object", "properties": {}, "required": [],
                                 "additionalProperties": False}
        if isinstance(target, Mapping) and types_of(target) == ["array"]:
            return {"type": "array", "items": empty, "maxItems": 0,
                    "description": cut + " Send an empty list."}
        return {**empty, "description": cut + " Send an empty object."}

    def not_shown(self, target: Any, ref: str | None) -> dict[str, Any]:
        """An open stand-in of ``target``'s type, for a part past the budget."""
        out: dict[str, Any] = {}
        if not isinstance(target, Mapping):
            return out
        name = ""
        if ref is not None:
            name = self.label(ref, target)
        elif isinstance(target.get("title"), str):
            name = target["title"]
        where = f" (see {name!r} in the API's description)" if name else ""
        note = (f"Its structure is not shown{where}: this tool's input would be too large. "
                "It is checked when the tool is called.")
        own = target.get("description")
        if isinstance(own, str) and own.strip():
            note = append_sentence(trim_text(own.strip(), 150), note)
        out["description"] = note
        types = self.types(target)
        if types:
            out["type"] = types[0] if len(types) == 1 else types
        items = target.get("items")
        if "array" in types and isinstance(items, Mapping):
            # typed items keep a deep stand-in expressible (OpenAI strict mode has no form
            # for a value of any type past its nesting limit)
            item_types = self.types(items)
            if item_types:
                out["items"] = {"type": item_types[0] if len(item_types) == 1 else item_types}
        return out

    def types(self, node: Mapping[str, Any]) -> list[str]:
        """The JSON types ``node`` declares, through an alias and, without a type of its own,
        the union of its branches' (when every branch declares one)."""
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            try:
                target = self.final_target(ref)
            except ValueError:
                return []
            node = target if isinstance(target, Mapping) else {}
        declared = [t for t in types_of(node) if t in JSON_TYPES]
        if declared:
            return declared
        for key in ("anyOf", "oneOf"):
            branches = node.get(key)
            if not isinstance(branches, list | tuple) or not branches:
                continue
            union: list[str] = []
            for branch in branches:
                if isinstance(branch, Mapping) and isinstance(branch.get("$ref"), str):
                    try:
                        branch = self.final_target(branch["$ref"])
                    except ValueError:
                        return []
                found = types_of(branch) if isinstance(branch, Mapping) else []
                if not found:
                    return []
                union += [t for t in found if t in JSON_TYPES and t not in union]
            return union
        return []


def _subschemas(key: str, value: Any) -> list[Any] | None:
    """The subschemas the keyword ``key`` holds in ``value``, or None when it holds none
    (what :meth:`_Inliner.children` copies as slots; dependencies' name lists counted too)."""
    if key in _ONE_SCHEMA and isinstance(value, Mapping | bool):
        return [value]
    if (key in _SCHEMA_MAP or key == "dependencies") and isinstance(value, Mapping):
        return list(value.values())
    if (key in _SCHEMA_LIST or key == "items") and isinstance(value, list | tuple):
        return list(value)
    return None


def _reserve_for(node: Any) -> int:
    """What the budget keeps for a pending subschema: its own size when it is small, else
    a stand-in's (and a reference's sibling keywords besides)."""
    size = _count(node, _STAND_IN_SIZE)
    small = min(size, _STAND_IN_SIZE)
    if isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        return small + _STAND_IN_SIZE
    return small


def _size(value: Any) -> int:
    """About how many characters ``value`` takes in JSON, its parts aside."""
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, Mapping):
        return 2 + sum(len(str(k)) + 4 for k in value)
    if isinstance(value, list | tuple):
        return 2 + len(value)
    return 5


def _count(value: Any, limit: int) -> int:
    """About how many characters ``value`` takes in JSON, counting no further than just past
    ``limit``."""
    count = 0
    stack = [value]
    while stack and count <= limit:
        node = stack.pop()
        count += _size(node)
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return count


def _bounded_copy(value: Any, limit: int) -> tuple[Any, int]:
    """A deep copy of ``value`` made of plain dicts and lists, and about how many characters
    it takes in JSON; :class:`_TooLarge` past ``limit`` (a shared part counts each time)."""
    count = 0

    def copy(node: Any) -> Any:
        nonlocal count
        count += _size(node)
        if count > limit:
            raise _TooLarge
        if isinstance(node, Mapping):
            return {str(k): copy(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [copy(v) for v in node]
        return node

    return copy(value), count


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

