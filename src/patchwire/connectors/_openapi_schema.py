"""OpenAPI schema objects → self-contained JSON Schema 2020-12 (for action inputs).

Local ``$ref``\\s are inlined so an action's input schema stands on its own (tool adapters
and validators see one document, no component registry). Resolved components are
memoized: a component used by 500 operations is converted once and the same (never
mutated) object is shared.

Recursive components cannot be inlined. When resolving a ``$ref`` meets the same ref
again further down (a cycle), that inner occurrence becomes ``{"$ref": "#/$defs/Name"}``
and the component's converted body is kept aside as a definition; the caller asks
:meth:`SchemaConverter.defs_for` for the definitions an input schema needs and puts them
under the input's ``$defs``. The size stays bounded: each recursive component appears once
per input schema, however deep the data may nest.

OpenAPI 3.0 dialect differences are converted on the way (``nullable``, boolean
``exclusiveMinimum``/``exclusiveMaximum``, ``example``, OpenAPI-only keywords), and keyword
values that would make the result an invalid JSON Schema (a wrong type, a regex Python
cannot compile) are dropped and counted, since real-world documents carry such mistakes
and one bad ``minLength`` must not cost the whole operation.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

__all__ = ["BadRefError", "ExternalRefError", "SchemaConverter", "json_value"]


class ExternalRefError(Exception):
    """A ``$ref`` points outside this document (another file or a URL)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(ref)


class BadRefError(Exception):
    """A local ``$ref`` does not resolve to anything in this document."""

    def __init__(self, ref: str, why: str) -> None:
        self.ref = ref
        super().__init__(f"{ref}: {why}")


# Keywords OpenAPI adds to JSON Schema that mean nothing to an input validator.
_DROP = frozenset({"discriminator", "xml", "externalDocs", "nullable", "$schema", "$id",
                   "$anchor", "$dynamicAnchor", "$dynamicRef", "$recursiveRef",
                   "$recursiveAnchor", "id"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions",
                          "dependentSchemas"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_ONE = frozenset({"additionalProperties", "not", "contains", "if", "then", "else",
                         "propertyNames", "unevaluatedItems", "unevaluatedProperties",
                         "additionalItems", "contentSchema", "items"})
_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
_NON_NEG_INT = frozenset({"minLength", "maxLength", "minItems", "maxItems", "minProperties",
                          "maxProperties", "minContains", "maxContains"})
_NUMBERS = frozenset({"minimum", "maximum"})
_STRINGS = frozenset({"title", "description", "format", "$comment", "contentEncoding",
                      "contentMediaType"})
_BOOLS = frozenset({"uniqueItems", "readOnly", "writeOnly", "deprecated"})
_VALUES = frozenset({"default", "const"})
# Siblings of a $ref that only annotate: merged into the resolved schema directly.
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "deprecated",
                          "readOnly", "writeOnly", "$comment", "format"})
_DEF_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def json_value(value: Any) -> Any:
    """Make a parsed YAML value plain JSON (dates become ISO strings, keys strings), so a
    connector dumped to YAML and loaded back compares equal."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, _dt.date | _dt.datetime | _dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class SchemaConverter:
    """Converts schemas of one document; holds the memo of resolved components."""

    def __init__(self, document: Mapping[str, Any], *, max_depth: int = 32) -> None:
        self._doc = document
        self._max_depth = max_depth
        # ref -> (converted schema, refs of the $defs it needs)
        self._cache: dict[str, tuple[Any, frozenset[str]]] = {}
        self._stack: list[str] = []
        self._on_stack: set[str] = set()
        self._recursive: set[str] = set()
        self._defs: dict[str, tuple[Any, frozenset[str]]] = {}
        self._def_names: dict[str, str] = {}
        self._broken: dict[str, ExternalRefError | BadRefError] = {}
        # Converted component bodies in the order they were finished (children first).
        self._shared: list[Any] = []
        self._used_def_names: set[str] = set()
        #: refs whose inlining was cut at ``max_depth`` (reported as warnings)
        self.truncated: set[str] = set()
        #: how many invalid keyword values were dropped, by keyword
        self.dropped: dict[str, int] = {}

    # -- references -------------------------------------------------------------------

    def lookup(self, ref: str) -> Any:
        """The raw object a ref points at; raises ExternalRefError / BadRefError."""
        if not ref.startswith("#"):
            raise ExternalRefError(ref)
        current: Any = self._doc
        pointer = ref[1:]
        if pointer and not pointer.startswith("/"):
            raise BadRefError(ref, "only JSON-pointer refs (#/...) are supported")
        for raw in pointer.split("/")[1:]:
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(current, Mapping) and part in current:
                current = current[part]
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                raise BadRefError(ref, f"nothing at {part!r}")
        return current

    def deref(self, obj: Any) -> Any:
        """Follow ``$ref`` chains of non-schema objects (parameters, request bodies)."""
        seen: set[str] = set()
        while isinstance(obj, Mapping) and isinstance(obj.get("$ref"), str):
            ref = obj["$ref"]
            if ref in seen:
                raise BadRefError(ref, "reference cycle")
            seen.add(ref)
            obj = self.lookup(ref)
        return obj

    def _def_name(self, ref: str) -> str:
        name = self._def_names.get(ref)
        if name is None:
            last = unquote(ref.rsplit("/", 1)[-1]).replace("~1", "_").replace("~0", "_")
            base = _DEF_NAME.sub("_", last) or "schema"
            name, n = base, 2
            while name in self._used_def_names:
                name, n = f"{base}_{n}", n + 1
            self._used_def_names.add(name)
            self._def_names[ref] = name
        return name

    def definition(self, schema: Any) -> Any:
        """The body behind ``{"$ref": "#/$defs/Name"}`` (a recursive component), else None."""
        if isinstance(schema, Mapping) and set(schema) == {"$ref"}:
            for ref, name in self._def_names.items():
                if schema["$ref"] == f"#/$defs/{name}" and ref in self._defs:
                    return self._defs[ref][0]
        return None

    def defs_for(self, needed: frozenset[str] | set[str]) -> dict[str, Any]:
        """The ``$defs`` an input schema needs (transitively), by definition name."""
        out: dict[str, Any] = {}
        todo = sorted(needed)
        seen: set[str] = set()
        while todo:
            ref = todo.pop()
            if ref in seen:
                continue
            seen.add(ref)
            body, deps = self._defs[ref]
            out[self._def_name(ref)] = body
            todo.extend(d for d in deps if d not in seen)
        return dict(sorted(out.items()))

    def shared_schemas(self) -> list[Any]:
        """Every converted component body, each before any component that inlines it."""
        return list(self._shared)

    # -- conversion -------------------------------------------------------------------

    def convert(self, schema: Any) -> tuple[Any, frozenset[str]]:
        """Convert one schema; returns it with the refs of the ``$defs`` it needs."""
        deps: set[str] = set()
        out = self._conv(schema, deps, 0)
        return out, frozenset(deps)

    def _drop(self, keyword: str) -> None:
        self.dropped[keyword] = self.dropped.get(keyword, 0) + 1

    def _conv(self, node: Any, deps: set[str], depth: int) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, Mapping):
            self._drop("schema")
            return {}
        ref = node.get("$ref")
        if isinstance(ref, str):
            resolved = self._conv_ref(ref, deps, depth)
            if len(node) == 1:
                return resolved
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return self._with_siblings(resolved, self._conv_obj(siblings, deps, depth))
        return self._conv_obj(node, deps, depth)

    def _conv_ref(self, ref: str, deps: set[str], depth: int) -> Any:
        broken = self._broken.get(ref)
        if broken is not None:
            raise broken
        cached = self._cache.get(ref)
        if cached is not None:
            for d in cached[1]:
                # Memoized while a cycle was open whose head then failed to resolve.
                if d in self._broken:
                    raise self._broken[d]
            deps.update(cached[1])
            return cached[0]
        if ref in self._on_stack:
            # A cycle: this occurrence refers to the definition being built further up.
            self._recursive.add(ref)
            deps.add(ref)
            return {"$ref": f"#/$defs/{self._def_name(ref)}"}
        if depth >= self._max_depth:
            # Not recursive, just very deep: cut here so inputs stay a sane size.
            self.truncated.add(ref)
            return {"description": f"{self._def_name(ref)} (nesting too deep to inline)"}
        try:
            target = self.lookup(ref)
        except (ExternalRefError, BadRefError) as exc:
            self._broken[ref] = exc
            raise
        self._stack.append(ref)
        self._on_stack.add(ref)
        local: set[str] = set()
        try:
            body = self._conv(target, local, depth + 1)
        except (ExternalRefError, BadRefError) as exc:
            self._broken[ref] = exc
            raise
        finally:
            self._stack.pop()
            self._on_stack.discard(ref)
        self._shared.append(body)
        result: Any
        if ref in self._recursive:
            local.discard(ref)
            self._defs[ref] = (body, frozenset(local))
            result = {"$ref": f"#/$defs/{self._def_name(ref)}"}
            needed = frozenset(local | {ref})
        else:
            result, needed = body, frozenset(local)
        self._cache[ref] = (result, needed)
        deps.update(needed)
        return result

    @staticmethod
    def _with_siblings(resolved: Any, siblings: dict[str, Any]) -> Any:
        if not siblings:
            return resolved
        if resolved is True or resolved == {}:
            return siblings
        if "anyOf" in siblings and set(siblings) <= _ANNOTATIONS | {"anyOf"}:
            # `$ref` + `nullable` came back as anyOf[{}, null]: put the target inside.
            alts = [resolved if a == {} else a for a in siblings["anyOf"]]
            return {**siblings, "anyOf": alts}
        if isinstance(resolved, dict) and (
            set(siblings) <= _ANNOTATIONS or set(resolved) == {"$ref"}
        ):
            # 2020-12 allows keywords beside $ref; annotations simply override.
            return {**resolved, **siblings}
        return {"allOf": [resolved], **siblings}

    def _conv_obj(self, node: Mapping[str, Any], deps: set[str], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str) or key.startswith("x-") or key in _DROP:
                continue
            if key in _SCHEMA_MAPS:
                if isinstance(value, Mapping):
                    out[key] = {str(k): self._conv(v, deps, depth) for k, v in value.items()}
                    if key in ("patternProperties",):
                        out[key] = {k: v for k, v in out[key].items() if _compiles(k)}
                    if key == "definitions":
                        out["$defs"] = out.pop("definitions")
                else:
                    self._drop(key)
            elif key in _SCHEMA_LISTS:
                if isinstance(value, list) and value:
                    out[key] = [self._conv(v, deps, depth) for v in value]
                else:
                    self._drop(key)
            elif key in _SCHEMA_ONE:
                if key == "items" and isinstance(value, list):
                    out["prefixItems"] = [self._conv(v, deps, depth) for v in value]
                else:
                    out[key] = self._conv(value, deps, depth)
            elif key == "type":
                typ = _convert_type(value)
                if typ is None:
                    self._drop(key)
                else:
                    out[key] = typ
                    if value == "file":
                        out.setdefault("format", "binary")
            elif key == "required":
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    out[key] = list(dict.fromkeys(value))
                elif value is not False:
                    self._drop(key)
            elif key == "example":
                out.setdefault("examples", [json_value(value)])
            elif key == "examples":
                # In schemas it is a list (JSON Schema); OpenAPI media types use a map.
                if isinstance(value, list):
                    out[key] = json_value(value)
                elif isinstance(value, Mapping):
                    out[key] = [json_value(v.get("value")) for v in value.values()
                                if isinstance(v, Mapping) and "value" in v]
            elif key == "enum":
                if isinstance(value, list):
                    out[key] = json_value(value)
                else:
                    self._drop(key)
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                if _is_number(value):
                    out[key] = value
                elif value is True:
                    bound = node.get("minimum" if key == "exclusiveMinimum" else "maximum")
                    if _is_number(bound):
                        out[key] = bound
            elif key in _NON_NEG_INT:
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    out[key] = value
                elif isinstance(value, float) and value.is_integer() and value >= 0:
                    out[key] = int(value)
                else:
                    self._drop(key)
            elif key in _NUMBERS:
                if _is_number(value):
                    out[key] = value
                else:
                    self._drop(key)
            elif key == "multipleOf":
                if _is_number(value) and value > 0:
                    out[key] = value
                else:
                    self._drop(key)
            elif key in _STRINGS:
                if isinstance(value, str):
                    out[key] = value
                elif key in ("title", "description") and value is not None:
                    out[key] = str(value)
            elif key == "pattern":
                if isinstance(value, str) and _compiles(value):
                    out[key] = value
                else:
                    self._drop(key)
            elif key in _BOOLS:
                if isinstance(value, bool):
                    out[key] = value
                else:
                    self._drop(key)
            elif key in _VALUES:
                out[key] = json_value(value)
            elif key == "dependentRequired":
                if isinstance(value, Mapping):
                    out[key] = {str(k): [str(x) for x in v] for k, v in value.items()
                                if isinstance(v, list)}
            elif key == "dependencies" and isinstance(value, Mapping):
                # Draft 4-7 `dependencies` is two keywords in 2020-12.
                for prop, dep in value.items():
                    if isinstance(dep, list):
                        out.setdefault("dependentRequired", {})[str(prop)] = [
                            str(x) for x in dep]
                    else:
                        out.setdefault("dependentSchemas", {})[str(prop)] = self._conv(
                            dep, deps, depth)
            elif key.startswith("$") or key == "dependencies":
                # Core keywords we do not support ($dynamicRef, $vocabulary...) would be
                # misread by a validator; a `$ref` that is not a string is an error.
                self._drop(key)
            else:
                # Unknown keywords are annotations to a 2020-12 validator; keep them when
                # they are plain data.
                out[key] = json_value(value)
        # A boolean exclusive bound replaced its minimum/maximum: drop the inclusive one.
        if node.get("exclusiveMinimum") is True and "exclusiveMinimum" in out:
            out.pop("minimum", None)
        if node.get("exclusiveMaximum") is True and "exclusiveMaximum" in out:
            out.pop("maximum", None)
        props = out.get("properties")
        if isinstance(props, dict):
            # readOnly properties are set by the server; callers must not send them.
            read_only = [k for k, v in props.items()
                         if isinstance(v, dict) and v.get("readOnly") is True]
            if read_only:
                out["properties"] = {k: v for k, v in props.items() if k not in read_only}
                if isinstance(out.get("required"), list):
                    out["required"] = [r for r in out["required"] if r not in read_only]
        if out.get("required") == []:
            del out["required"]
        if node.get("nullable") is True:
            out = _nullable(out)
        return out


def _convert_type(value: Any) -> Any:
    if value == "file":
        return "string"
    if isinstance(value, str):
        return value if value in _TYPES else None
    if isinstance(value, list):
        types = [t for t in value if isinstance(t, str) and t in _TYPES]
        return list(dict.fromkeys(types)) or None
    return None


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 ``nullable: true`` in 2020-12 terms: ``null`` is one more type."""
    enum = schema.get("enum")
    if isinstance(enum, list) and None not in enum:
        schema["enum"] = [*enum, None]
    typ = schema.get("type")
    if isinstance(typ, str):
        if typ != "null":
            schema["type"] = [typ, "null"]
        return schema
    if isinstance(typ, list):
        if "null" not in typ:
            schema["type"] = [*typ, "null"]
        return schema
    if any(k in schema for k in ("allOf", "anyOf", "oneOf", "$ref")):
        return {"anyOf": [schema, {"type": "null"}]}
    if "enum" not in schema and set(schema) <= _ANNOTATIONS:
        # Untyped: anything goes already. Written out so that a `$ref` beside `nullable`
        # (handled in _with_siblings) can substitute its target for the `{}`.
        return {**schema, "anyOf": [{}, {"type": "null"}]}
    return schema


_regex_ok: dict[str, bool] = {}


def _compiles(pattern: str) -> bool:
    """jsonschema checks ``pattern`` with Python's ``re``; ECMA-only syntax fails there."""
    ok = _regex_ok.get(pattern)
    if ok is None:
        try:
            re.compile(pattern)
            ok = True
        except (re.error, RecursionError, OverflowError):
            ok = False
        _regex_ok[pattern] = ok
    return ok
