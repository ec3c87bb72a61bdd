"""OpenAI strict mode (Structured Outputs): an action's input as strict-mode parameters.

What strict mode accepts, with its limits, is written down in
:mod:`patchwire.tools._provider_rules`; :func:`openai_strict_schema` brings an action's input
schema there, starting from the flat object root every provider gets
(:mod:`patchwire.tools._root_shape`):

    * Every object gets ``additionalProperties: false`` and lists every property in
      ``required``; an optional property becomes nullable (``"type": [T, "null"]`` for plain
      scalars, ``anyOf: [..., {"type": "null"}]`` otherwise) and
      :func:`~patchwire.tools.drop_strict_nulls` removes those nulls again before a call.
    * Only the keywords strict mode supports are kept. Everything else — minLength, maxLength,
      minProperties, maxProperties, patternProperties, propertyNames, unevaluatedProperties,
      unevaluatedItems, contains, minContains, maxContains, uniqueItems, allOf, not,
      if/then/else, dependentRequired, dependentSchemas, default, examples, other formats... —
      is removed and said in the schema's description ("Constraints: at most 200
      characters; default 30.") so the model still learns it; the action's own validation
      still enforces it. ``allOf`` is merged when the parts agree; ``oneOf`` becomes ``anyOf``;
      ``anyOf``/``oneOf`` beside an object's own keywords are distributed into whole variants.
    * What strict mode cannot say directly is encoded so that nothing a model may send is
      lost (``encode=True``, what :func:`~patchwire.tools.to_openai` uses); the arguments are
      decoded again before the call and then validated against the action's real schema
      (:func:`patchwire.tools._strict_arguments.strict_arguments`), so MCP and Anthropic, which
      get the real schema, are not concerned:

      - a free-form object, an object with both properties and a map of other keys, a tuple
        array (``prefixItems``), and an object or array past the 10 levels of nesting become a
        **JSON string** ("A JSON object, e.g. {...}"). Only where the real schema admits no
        string, so a string there can only be this encoding;
      - a map (``additionalProperties`` with a schema and no properties) becomes a **list of
        ``{key, value}`` pairs** whose value keeps its strict form (a JSON string when the
        value itself cannot be said);
      - a value of any type (no type, ``true``, ``items`` missing, a required property not
        declared) becomes ``anyOf`` string, number, boolean, null or ``{"json": "..."}`` for an
        object or array written as JSON;
      - past the size limits (5000 properties, 120 000 characters of names and values, 1000
        enum values) the biggest optional objects are folded into JSON strings and the
        biggest enums are said in words instead (validation still enforces them).

      A union that admits strings next to such a part, or a ``false`` schema that is
      required, still has no strict form: :func:`openai_strict_schema` raises
      :class:`StrictModeUnsupported` naming each reason with its JSON path, and such a tool
      is emitted with ``strict: false`` and the non-strict schema (refs inlined, root
      flattened). With ``encode=False`` every part above is such a reason (the rule before
      the encodings, kept to measure what they bring: bench/strict_corpus.py).
    * Strict mode cannot tell "absent" from ``null``: a null for an optional property is taken
      as "not given" (such properties that accept null say so in their description).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from patchwire.tools._provider_rules import (
    OPENAI_LARGE_ENUM,
    OPENAI_LARGE_ENUM_CHARS,
    OPENAI_MAX_ENUM_VALUES,
    OPENAI_MAX_NESTING,
    OPENAI_MAX_PROPERTIES,
    OPENAI_MAX_STRING_CHARS,
    OPENAI_STRICT_FORMATS,
    openai_limit_problems,
)
from patchwire.tools._root_shape import (
    absorb_all_of,
    choice_sentence,
    merge_schemas,
    provider_schema,
    required_only,
)
from patchwire.tools._schema_common import (
    COMPOSITE_TYPES,
    JSON_TYPES,
    JSON_WRAPPER_KEY,
    admits,
    append_sentence,
    compact_json,
    json_pointer,
    shown_path,
    types_of,
    value_types,
)

__all__ = ["StrictModeUnsupported", "openai_strict_schema", "strict_from_flat"]

_KEPT_IN_STRICT = frozenset({
    "pattern", "multipleOf", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minItems", "maxItems",
})
_SILENTLY_DROPPED = frozenset({
    "$schema", "$id", "$anchor", "$comment", "$dynamicAnchor", "readOnly", "writeOnly",
    "nullable", "discriminator", "xml", "externalDocs",
})
#: how many times the limits may make a schema fold parts before it is given up on
_FOLD_ROUNDS = 8
#: the longest list of keys a folded object's description names
_KEYS_SHOWN = 600


class StrictModeUnsupported(ValueError):
    """A schema OpenAI strict mode cannot express faithfully; ``reasons`` name JSON paths."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("strict mode cannot express this schema: " + "; ".join(self.reasons))


def _count(value: Any, noun: str) -> str:
    return f"{value} {noun}" if value == 1 else f"{value} {noun}s"


def _constraint(key: str, value: Any) -> str | None:
    """A keyword strict mode drops, said in words (``None``: nothing worth saying)."""
    words: dict[str, str] = {
        "minLength": f"at least {_count(value, 'character')}",
        "maxLength": f"at most {_count(value, 'character')}",
        "minProperties": f"at least {_count(value, 'key')}",
        "maxProperties": f"at most {_count(value, 'key')}",
        "minContains": f"at least {value} matching items",
        "maxContains": f"at most {value} matching items",
        "format": f"format {value}",
        "default": f"default {compact_json(value)}",
        "not": f"must not match {compact_json(value)}",
        "contains": f"must contain an item matching {compact_json(value)}",
        "const": f"must be {compact_json(value)}",
    }
    if key in words:
        return words[key]
    if key == "uniqueItems":
        return "items must be unique" if value else None
    if key == "deprecated":
        return "deprecated" if value else None
    if key == "examples" and isinstance(value, list):
        return "e.g. " + ", ".join(compact_json(v, 80) for v in value[:3]) if value else None
    if key == "example":
        return "e.g. " + compact_json(value, 80)
    if key == "dependentRequired" and isinstance(value, dict):
        return "; ".join(f"if `{k}` is given, also give " + ", ".join(f"`{x}`" for x in v)
                         for k, v in value.items() if isinstance(v, list))
    if key in ("anyOf", "oneOf") and isinstance(value, list) and all(map(required_only, value)):
        return choice_sentence(key, value).rstrip(".")
    if key.startswith("x-") or key in _SILENTLY_DROPPED:
        return None
    return f"{key} {compact_json(value)}"


def _admits_null(node: Any) -> bool:
    if node is True or node == {}:
        return True
    if not isinstance(node, dict):
        return False
    if "null" in types_of(node) or None in (node.get("enum") or []):
        return True
    if "const" in node and node["const"] is None:
        return True
    return any(_admits_null(b) for k in ("anyOf", "oneOf") for b in node.get(k) or [])


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` also admitting ``null``, in the form OpenAI's own SDK emits."""
    if "anyOf" in node and "type" not in node:
        if any(isinstance(b, dict) and b.get("type") == "null" for b in node["anyOf"]):
            return node
        return {**node, "anyOf": [*node["anyOf"], {"type": "null"}]}
    types = types_of(node)
    if "null" in types:
        return node
    if types and not COMPOSITE_TYPES & set(types) and "enum" not in node and "const" not in node:
        return {**node, "type": [*types, "null"]}
    inner = {k: v for k, v in node.items() if k != "description"}
    wrapper: dict[str, Any] = {"anyOf": [inner, {"type": "null"}]}
    if node.get("description"):
        wrapper["description"] = node["description"]
    return wrapper


def _example(node: Mapping[str, Any]) -> Any:
    """The schema's own example of its value, if it gives one."""
    for key in ("example", "default"):
        if key in node and isinstance(node[key], dict | list) and node[key]:
            return node[key]
    examples = node.get("examples")
    if isinstance(examples, list) and examples and isinstance(examples[0], dict | list):
        return examples[0]
    return None


def _keys_said(node: Mapping[str, Any]) -> str:
    """A folded object's keys in words: `a` (string, required), `b` (integer)..."""
    props = node.get("properties")
    if not isinstance(props, dict) or not props:
        return ""
    required = {r for r in node.get("required") or [] if isinstance(r, str)}
    parts: list[str] = []
    for name, sub in props.items():
        kind = "/".join(value_types(sub)) if isinstance(sub, dict) else ""
        notes = ", ".join(x for x in (kind, "required" if name in required else "") if x)
        parts.append(f"`{name}`" + (f" ({notes})" if notes else ""))
    text = ", ".join(parts)
    if len(text) > _KEYS_SHOWN:
        text = text[: _KEYS_SHOWN].rsplit(", ", 1)[0] + ", …"
    return "with the keys " + text


class _Strict:
    """One strict-mode conversion; ``reasons`` collects what it cannot express.

    With ``encode``, what strict mode cannot say is encoded instead (module docstring):
    ``fold`` names the paths made JSON strings to keep within the size limits and
    ``plain_enum`` the enums said in words; ``candidates`` and ``enums`` record, for the
    next round, what could be folded and how big it is."""

    def __init__(self, *, encode: bool, fold: frozenset[str] = frozenset(),
                 plain_enum: frozenset[str] = frozenset()) -> None:
        self.reasons: list[str] = []
        self.encode = encode
        self.fold = fold
        self.plain_enum = plain_enum
        self.level = 0  # objects and arrays on the path to the node being converted
        self.string_union = False  # inside a union one of whose branches admits strings
        self.properties = 0
        self.chars = 0
        #: (optional, properties, characters, path) of objects and arrays that could fold
        self.candidates: list[tuple[bool, int, int, str]] = []
        #: (values, characters, path) of every enum kept
        self.enums: list[tuple[int, int, str]] = []

    def convert(self, node: Any, path: str) -> dict[str, Any]:
        if node is True and self.encode:
            return self.any_value({}, path, [])
        if not isinstance(node, dict):
            self.reasons.append(f"{shown_path(path)}: the boolean schema {node!r} has no "
                                "strict-mode form")
            return {"type": "string"}
        if path in self.fold:
            return self.json_string(node, [])
        node, left = absorb_all_of(dict(node))
        sentences: list[str] = []
        if left:
            sentences.append("must also match " + "; ".join(compact_json(m) for m in left))
        union: list[dict[str, Any]] | None = None
        for kind in ("anyOf", "oneOf"):
            branches = node.pop(kind, None)
            if not isinstance(branches, list) or not branches:
                continue
            if union is not None or all(required_only(b) for b in branches):
                note = _constraint(kind, branches)
                if note:
                    sentences.append(note)
                continue
            union = self.union(node, kind, branches, path)
            if union is None:
                sentences.append(f"{kind} {compact_json(branches)}")
        if union is not None:
            out: dict[str, Any] = {"anyOf": union}
            description = node.get("description") or node.get("title")
            if isinstance(description, str) and description:
                out["description"] = description
            return self.describe(out, sentences)
        return self.describe(self.typed(node, path, sentences), sentences)

    def union(self, node: dict[str, Any], kind: str, branches: list[Any],
              path: str) -> list[dict[str, Any]] | None:
        base = {k: v for k, v in node.items()
                if k not in ("description", "title", "anyOf", "oneOf")}
        variants: list[Any] = []
        for branch in branches:
            if not base:
                variants.append(branch)
                continue
            merged = merge_schemas(base, branch)
            if merged is None:
                return None
            variants.append(merged)
        # A JSON string in a union that also takes plain strings could not be told apart
        # from one of them when the arguments come back.
        outer = self.string_union
        self.string_union = outer or any(admits(v, "string") for v in variants)
        try:
            return [self.convert(v, json_pointer(path, "anyOf", i))
                    for i, v in enumerate(variants)]
        finally:
            self.string_union = outer

    def describe(self, out: dict[str, Any], sentences: list[str]) -> dict[str, Any]:
        if sentences:
            text = "Constraints: " + "; ".join(sentences) + "."
            out["description"] = append_sentence(out.get("description"), text)
        return out

    def typed(self, node: dict[str, Any], path: str, sentences: list[str]) -> dict[str, Any]:
        types = value_types(node)
        if not types and "type" not in node:
            if self.encode:
                return self.any_value(node, path, sentences)
            self.reasons.append(f"{shown_path(path)}: a schema without a type (any value) has no "
                                "strict-mode form")
            return {"type": "string"}
        unknown = [t for t in types if t not in JSON_TYPES]
        if unknown or not types:
            self.reasons.append(f"{shown_path(path)}: unknown type {node.get('type')!r}")
            return {"type": "string"}
        if "null" in types and len(types) > 1 and COMPOSITE_TYPES & set(types):
            rest = [t for t in types if t != "null"]
            inner = self.typed({**node, "type": rest[0] if len(rest) == 1 else rest}, path,
                               sentences)
            return _nullable(inner)
        if len(COMPOSITE_TYPES & set(types)) and len([t for t in types if t != "null"]) > 1:
            self.reasons.append(f"{shown_path(path)}: a schema of several types including "
                                f"{'/'.join(sorted(COMPOSITE_TYPES & set(types)))} has no "
                                "strict-mode form")
        out: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
        description = node.get("description")
        if isinstance(description, str) and description:
            out["description"] = description
        elif isinstance(node.get("title"), str) and node["title"]:
            out["description"] = node["title"]
        encoding = self.encoding(node, types, path) if COMPOSITE_TYPES & set(types) else None
        if encoding == "json":
            return self.json_string(node, sentences)
        structural = {"type", "description", "title", "properties", "required",
                      "additionalProperties", "items"}
        for key, value in node.items():
            if key in structural:
                continue
            if key == "enum" and path in self.plain_enum and isinstance(value, list):
                shown = ", ".join(compact_json(v, 40) for v in value[:5])
                sentences.append(f"one of {len(value)} values (checked when the tool is "
                                 f"called), e.g. {shown}")
                continue
            keep = key in ("enum", "const") or key in _KEPT_IN_STRICT or (
                key == "format" and value in OPENAI_STRICT_FORMATS)
            if keep:
                out[key] = value
                if key == "enum" and isinstance(value, list):
                    size = sum(len(v) for v in value if isinstance(v, str))
                    self.enums.append((len(value), size, path))
                    self.chars += size
            elif key in ("minLength", "maxLength") and node.get("minLength") == node.get(
                    "maxLength"):
                if key == "minLength":
                    sentences.append(f"exactly {_count(value, 'character')}")
            else:
                note = _constraint(key, value)
                if note:
                    sentences.append(note)
        if not COMPOSITE_TYPES & set(types):
            return out
        self.level += 1
        try:
            if encoding == "pairs":
                return self.pairs(node, out, path)
            if "object" in types:
                self.object(node, out, path)
            if "array" in types:
                self.array(node, out, path)
        finally:
            self.level -= 1
        return out

    def encoding(self, node: dict[str, Any], types: list[str], path: str) -> str | None:
        """How an object or array strict mode cannot say is encoded: ``"json"`` (a JSON
        string), ``"pairs"`` (a map as key/value pairs), or ``None`` (said as it is)."""
        if not self.encode:
            return None
        props = node.get("properties")
        extra = node.get("additionalProperties")
        why: str | None = None
        if path in self.fold or self.level + 1 > OPENAI_MAX_NESTING:
            why = "json"
        elif "object" in types and isinstance(extra, dict) and extra != {}:
            # a map: pairs keep its values typed, unless it also has properties of its own
            # or its pairs would be nested past the limit
            why = "json" if props or self.level + 2 > OPENAI_MAX_NESTING else "pairs"
        else:
            free_form = "object" in types and not props and extra is not False
            tuple_array = "array" in types and ("prefixItems" in node
                                                or isinstance(node.get("items"), list))
            why = "json" if free_form or tuple_array else None
        if why is None:
            return None
        if self.string_union or admits(node, "string"):
            self.reasons.append(f"{shown_path(path)}: a JSON-string encoding would not be told "
                                "apart from the strings this part also accepts")
            return None
        return why

    def json_string(self, node: dict[str, Any], sentences: list[str]) -> dict[str, Any]:
        """An object or array as a string holding its JSON; the arguments' decoding parses
        it back before the action's own validation."""
        kind = "array" if admits(node, "array") and not admits(node, "object") else "object"
        description = node.get("description") or node.get("title")
        said = f"A JSON {kind} written as a string"
        keys = _keys_said(node) if kind == "object" else ""
        extra = node.get("additionalProperties")
        if keys:
            said += ", " + keys
            if isinstance(extra, dict) and extra != {}:
                said += ", and other keys each mapped to " + compact_json(extra, 120)
        elif kind == "object" and isinstance(extra, dict) and extra != {}:
            said += ", mapping keys to values of " + compact_json(extra, 120)
        elif kind == "array" and isinstance(node.get("prefixItems"), list):
            said += ", its items in order: " + compact_json(node["prefixItems"], 200)
        elif kind == "array" and isinstance(node.get("items"), dict):
            said += ", each item " + compact_json(node["items"], 200)
        example = _example(node)
        if example is None and kind == "object" and not keys:
            example = {"key": "value"}
        if example is not None:
            said += ", e.g. " + compact_json(example, 200)
        result: dict[str, Any] = {"type": "string", "description": append_sentence(
            description if isinstance(description, str) else None, said + ".")}
        return self.describe(result, sentences)

    def any_value(self, node: dict[str, Any], path: str,
                  sentences: list[str]) -> dict[str, Any]:
        """A value of any type: a string, number, boolean or null as it is, an object or
        array as JSON in ``{"json": "..."}``."""
        branches: list[dict[str, Any]] = [
            {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
        said = "Any value: text, a number, true/false or null as it is"
        if self.level + 1 <= OPENAI_MAX_NESTING:
            branches.append({
                "type": "object",
                "properties": {JSON_WRAPPER_KEY: {
                    "type": "string",
                    "description": "The object or array written as JSON, e.g. {\"a\": 1}."}},
                "required": [JSON_WRAPPER_KEY], "additionalProperties": False})
            said += f"; an object or array as {{\"{JSON_WRAPPER_KEY}\": \"<its JSON>\"}}"
        else:
            self.reasons.append(f"{shown_path(path)}: a value of any type this deep has no "
                                "strict-mode form")
        out: dict[str, Any] = {"anyOf": branches}
        description = node.get("description") or node.get("title")
        out["description"] = append_sentence(
            description if isinstance(description, str) else None, said + ".")
        for key, value in node.items():
            if key not in ("description", "title"):
                note = _constraint(key, value)
                if note:
                    sentences.append(note)
        return out

    def pairs(self, node: dict[str, Any], out: dict[str, Any], path: str) -> dict[str, Any]:
        """A map as a list of ``{key, value}`` pairs; the decoding makes it an object again."""
        self.level += 1  # the pair object
        try:
            value = self.convert(node["additionalProperties"],
                                 json_pointer(path, "additionalProperties"))
        finally:
            self.level -= 1
        self.properties += 2
        self.chars += len("key") + len("value")
        key: dict[str, Any] = {"type": "string", "description": "The key."}
        names = node.get("propertyNames")
        if isinstance(names, dict) and isinstance(names.get("pattern"), str):
            key["pattern"] = names["pattern"]
        said = ("A map given as a list of {key, value} pairs (each key at most once); it is "
                "sent as one object")
        result: dict[str, Any] = {
            "type": "array",
            "description": append_sentence(out.get("description"), said + "."),
            "items": {"type": "object", "properties": {"key": key, "value": value},
                      "required": ["key", "value"], "additionalProperties": False},
        }
        return result

    def object(self, node: dict[str, Any], out: dict[str, Any], path: str) -> None:
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props is None:
            props = {}
        if not isinstance(props, dict):
            self.reasons.append(f"{json_pointer(path, 'properties')}: not an object")
            props = {}
        if isinstance(extra, dict) and extra != {}:
            self.reasons.append(f"{shown_path(path)}: a map (additionalProperties with a schema) "
                                "has no strict-mode form")
        elif not props and extra is not False:
            self.reasons.append(f"{shown_path(path)}: a free-form object (no declared properties) "
                                "has no strict-mode form")
        required = [r for r in node.get("required") or [] if isinstance(r, str)]
        undeclared = [r for r in required if r not in props]
        if undeclared and self.encode and extra is not False:
            # required keys the schema names without describing: any value will do
            props = {**props, **dict.fromkeys(undeclared, True)}
        elif undeclared:
            self.reasons.append(f"{json_pointer(path, 'required')}: required but undeclared "
                                f"properties {undeclared} have no strict-mode form")
        converted: dict[str, Any] = {}
        for name, sub in props.items():
            child_path = json_pointer(path, "properties", name)
            if sub is False and self.encode and name not in required:
                continue  # no value is allowed: the model is not offered the key at all
            before = (self.properties, self.chars)
            child = self.convert(sub, child_path)
            if self.encode and isinstance(sub, dict) and self.properties > before[0] \
                    and not self.string_union and not admits(sub, "string"):
                self.candidates.append((name not in required, self.properties - before[0],
                                        self.chars - before[1], child_path))
            if name not in required:
                if _admits_null(sub):
                    child["description"] = append_sentence(
                        child.get("description"), "null means: leave it unset.")
                child = _nullable(child)
            converted[name] = child
        self.properties += len(converted)
        self.chars += sum(len(k) for k in converted)
        out["properties"] = converted
        out["required"] = list(converted)
        out["additionalProperties"] = False

    def array(self, node: dict[str, Any], out: dict[str, Any], path: str) -> None:
        items = node.get("items")
        if "prefixItems" in node or isinstance(items, list):
            self.reasons.append(f"{shown_path(path)}: tuple arrays (prefixItems) have no "
                                "strict-mode form")
            items = {}
        if items is None:
            if self.encode:
                items = True  # an array of anything
            else:
                self.reasons.append(f"{shown_path(path)}: an array without items has no "
                                    "strict-mode form")
                items = {"type": "string"}
        out["items"] = self.convert(items, json_pointer(path, "items"))


def openai_strict_schema(schema: Mapping[str, Any], *, encode: bool = True) -> dict[str, Any]:
    """``schema`` (an action's input) as OpenAI strict-mode parameters.

    Raises :class:`StrictModeUnsupported` when strict mode cannot express it (see the
    module docstring; ``encode=False``: without the encodings, faithfully or not at all)."""
    return strict_from_flat(provider_schema(schema), encode=encode)


def strict_from_flat(flat: dict[str, Any], *, encode: bool = True) -> dict[str, Any]:
    """:func:`openai_strict_schema` of a schema already made flat by
    :func:`~patchwire.tools._root_shape.provider_schema`."""
    fold: frozenset[str] = frozenset()
    plain_enum: frozenset[str] = frozenset()
    for _ in range(_FOLD_ROUNDS):
        converter = _Strict(encode=encode, fold=fold, plain_enum=plain_enum)
        out = converter.convert(flat, "")
        reasons = converter.reasons
        if reasons:
            raise StrictModeUnsupported(reasons)
        if out.get("type") != "object":
            raise StrictModeUnsupported(["/: the root is not an object"])
        problems = openai_limit_problems(out, "")
        if not problems:
            return out
        more = _to_fold(converter, fold) if encode else None
        more_plain = _to_say_in_words(converter, plain_enum) if encode else None
        if not more and not more_plain:
            raise StrictModeUnsupported(problems)
        fold |= more or frozenset()
        plain_enum |= more_plain or frozenset()
    raise StrictModeUnsupported(problems)


def _to_fold(converter: _Strict, fold: frozenset[str]) -> frozenset[str]:
    """The biggest objects and arrays to fold into JSON strings so that the schema's
    properties and characters come within OpenAI's limits, optional ones first."""
    over_props = converter.properties - OPENAI_MAX_PROPERTIES
    over_chars = converter.chars - OPENAI_MAX_STRING_CHARS
    if over_props <= 0 and over_chars <= 0:
        return frozenset()
    chosen: list[str] = []
    ranked = sorted(converter.candidates, key=lambda c: (not c[0], -c[1], -c[2]))
    for _optional, props, chars, path in ranked:
        if path in fold or any(path.startswith(p + "/") for p in chosen):
            continue
        if over_props <= 0 and over_chars <= 0:
            break
        if (over_props > 0 and props > 1) or (over_chars > 0 and chars > 0):
            chosen.append(path)
            # the folded part still has its one property in its parent
            over_props -= props
            over_chars -= chars
    return frozenset(chosen)


def _to_say_in_words(converter: _Strict, plain: frozenset[str]) -> frozenset[str]:
    """The biggest enums to say in words so that the enum values come within OpenAI's
    limits (and no single big string enum is over its own)."""
    total = sum(values for values, _, _ in converter.enums)
    chosen: list[str] = []
    for values, chars, path in sorted(converter.enums, reverse=True):
        if path in plain:
            continue
        if total > OPENAI_MAX_ENUM_VALUES or (values > OPENAI_LARGE_ENUM
                                              and chars > OPENAI_LARGE_ENUM_CHARS):
            chosen.append(path)
            total -= values
    return frozenset(chosen)
