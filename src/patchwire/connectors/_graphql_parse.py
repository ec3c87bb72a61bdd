"""Parsing GraphQL documents and building schemas with graphql-core, cached: the part of
GraphQL support the connector models themselves need (``spec.py`` fills an operation's
kind from its document). Imports nothing of Patchwire's, so anything may import it.

graphql-core is imported on first use, not with the package: it costs ~0.25 s to import
and only GraphQL connectors need it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphql import DocumentNode, GraphQLSchema, OperationDefinitionNode

__all__ = [
    "GraphQLDocumentError",
    "GraphQLSchemaError",
    "ParsedOperation",
    "introspection_of",
    "introspection_query",
    "load_schema",
    "parse_operation",
    "schema_from_text",
    "where_in_document",
]


@dataclass(frozen=True)
class ParsedOperation:
    """One operation of a parsed document (shared between callers: read only)."""

    document: DocumentNode
    operation: OperationDefinitionNode
    #: "query", "mutation" or "subscription"
    kind: str
    #: the operation's variables, in document order
    variables: tuple[str, ...]
    #: response keys (alias or name) of the operation's root fields, when the selection
    #: holds only fields (no fragments at the root); None otherwise
    root_keys: tuple[str, ...] | None
    #: variables the operation cannot run without: non-null, with no default
    required_variables: tuple[str, ...] = ()


class GraphQLDocumentError(ValueError):
    """A document that does not parse or names no runnable operation."""


@lru_cache(maxsize=4096)
def parse_operation(document: str, operation: str | None = None) -> ParsedOperation:
    """``document`` parsed and the operation it runs picked (``operation`` by name, else
    the only one). Raises :class:`GraphQLDocumentError` saying what and where (the line
    and column within the document)."""
    from graphql import GraphQLSyntaxError, OperationDefinitionNode, parse
    from graphql.language import FieldNode, NonNullTypeNode

    try:
        doc = parse(document)
    except GraphQLSyntaxError as exc:
        message = exc.message.removeprefix("Syntax Error: ").rstrip(".")
        raise GraphQLDocumentError(
            f"GraphQL syntax error: {message}{where_in_document(exc)}") from None
    except RecursionError:
        raise GraphQLDocumentError("the GraphQL document is nested too deeply") from None
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if not ops:
        raise GraphQLDocumentError("the document holds no operation (query or mutation)")
    if operation is None:
        if len(ops) > 1:
            names = ", ".join(o.name.value if o.name else "(anonymous)" for o in ops)
            raise GraphQLDocumentError(f"the document holds {len(ops)} operations ({names}); "
                                       "name the one to run in `operation`")
        op = ops[0]
    else:
        named = [o for o in ops if o.name is not None and o.name.value == operation]
        if not named:
            names = ", ".join(o.name.value for o in ops if o.name) or "none named"
            raise GraphQLDocumentError(f"the document has no operation {operation!r} "
                                       f"(it has: {names})")
        op = named[0]
    variables = tuple(v.variable.name.value for v in op.variable_definitions or ())
    selections = op.selection_set.selections
    root_keys: tuple[str, ...] | None = None
    if all(isinstance(s, FieldNode) for s in selections):
        root_keys = tuple((s.alias or s.name).value for s in selections
                          if isinstance(s, FieldNode))
    required = tuple(v.variable.name.value for v in op.variable_definitions or ()
                     if isinstance(v.type, NonNullTypeNode) and v.default_value is None)
    return ParsedOperation(doc, op, op.operation.value, variables, root_keys, required)


def where_in_document(exc: Any) -> str:
    locations = getattr(exc, "locations", None) or []
    if not locations:
        return ""
    loc = locations[0]
    return f" (line {loc.line}, column {loc.column} of the document)"


# -- schemas ----------------------------------------------------------------------------------

_schemas: dict[tuple[str, int, int], GraphQLSchema] = {}
_schemas_lock = threading.Lock()


class GraphQLSchemaError(ValueError):
    """A schema file that cannot be read or built."""


def load_schema(path: str | Path) -> GraphQLSchema:
    """The schema in ``path`` (SDL, or an introspection result as JSON), built once per
    version of the file: every connector naming it shares it."""
    p = Path(path)
    try:
        stat = p.stat()
    except OSError as exc:
        raise GraphQLSchemaError(f"cannot read the schema {p}: {exc.strerror or exc}") from None
    key = (str(p.resolve()), stat.st_size, stat.st_mtime_ns)
    schema = _schemas.get(key)
    if schema is not None:
        return schema
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphQLSchemaError(f"cannot read the schema {p}: {exc}") from None
    schema = schema_from_text(text, str(p))
    with _schemas_lock:
        # keep only the newest version of each file
        for old in [k for k in _schemas if k[0] == key[0]]:
            del _schemas[old]
        _schemas[key] = schema
    return schema


def schema_from_text(text: str, label: str = "<schema>") -> GraphQLSchema:
    """A schema from SDL or from an introspection result (``{"data": {"__schema": ...}}``,
    ``{"__schema": ...}``), as JSON text."""
    from graphql import GraphQLError, build_client_schema, build_schema

    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise GraphQLSchemaError(
                    f"{label}:{exc.lineno}: invalid JSON: {exc.msg}") from None
            return build_client_schema(introspection_of(data, label),  # type: ignore[arg-type]
                                       assume_valid=True)
        # The SDL of a real API is assumed to be valid (GitHub's validates in ~1 s more):
        # documents are still checked against what it declares.
        return build_schema(text, assume_valid_sdl=True, assume_valid=True, no_location=True)
    except GraphQLError as exc:
        raise GraphQLSchemaError(f"{label}: not a usable GraphQL schema: "
                                 f"{exc.message}{where_in_document(exc)}") from None
    except (TypeError, KeyError, ValueError) as exc:
        if isinstance(exc, GraphQLSchemaError):
            raise
        raise GraphQLSchemaError(f"{label}: not a usable GraphQL schema: {exc}") from None
    except RecursionError:
        raise GraphQLSchemaError(f"{label}: the schema is nested too deeply") from None


def introspection_of(data: Any, label: str) -> Mapping[str, Any]:
    """The ``{"__schema": ...}`` part of an introspection answer, or a typed error."""
    if isinstance(data, Mapping) and isinstance(data.get("data"), Mapping):
        data = data["data"]
    if not isinstance(data, Mapping) or not isinstance(data.get("__schema"), Mapping):
        raise GraphQLSchemaError(f"{label}: not an introspection result (no `__schema`; "
                                 "expected the answer to the introspection query)")
    return data


def introspection_query() -> str:
    """The standard introspection query (graphql-core's, with descriptions)."""
    from graphql import get_introspection_query

    return get_introspection_query(descriptions=True)
