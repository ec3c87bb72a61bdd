"""GraphQL documents and schemas of ``protocol: graphql`` connectors.

Parsing, validation and printing are graphql-core's (the reference implementation's
Python port); this module only names what Patchwire needs of them:

- :func:`parse_operation`: an action's document parsed once (cached by its text) and the
  operation it runs, with its kind, variables and root fields;
- :func:`load_schema`: a schema file (SDL ``.graphql`` or introspection JSON) read once per
  file version (cached by path, size and modification time);
- :func:`graphql_problems`: the load-time check of a GraphQL connector (every document
  valid against the schema, subscriptions refused, the cost rule's JSONata compiling),
  as (location, message) pairs for the loader's ``file:line`` errors;
- :func:`import_graphql`: a connector made from a schema (``patchwire connector import``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchwire.connectors._graphql_parse import (
    GraphQLDocumentError,
    GraphQLSchemaError,
    ParsedOperation,
    introspection_of,
    introspection_query,
    load_schema,
    parse_operation,
    schema_from_text,
    where_in_document,
)

if TYPE_CHECKING:
    from graphql import GraphQLSchema

    from patchwire.connectors.openapi import ImportResult
    from patchwire.connectors.spec import ConnectorSpec

__all__ = [
    "GraphQLDocumentError",
    "GraphQLSchemaError",
    "ParsedOperation",
    "graphql_problems",
    "import_graphql",
    "introspection_of",
    "introspection_query",
    "load_schema",
    "parse_operation",
    "schema_from_text",
]

_Loc = tuple[str | int, ...]


# -- the load-time check ----------------------------------------------------------------------


def graphql_problems(spec: ConnectorSpec) -> list[tuple[_Loc, str]]:
    """Problems of a GraphQL connector: its schema unreadable, a document invalid against
    it, a relay walk whose cursor variable the document lacks, a cost rule that does not
    compile. Documents that do not parse are reported by the models already."""
    from patchwire.expressions import ExpressionError, compile_expression

    found: list[tuple[_Loc, str]] = []
    if spec.protocol != "graphql":
        return found
    gql = spec.graphql
    schema: GraphQLSchema | None = None
    if gql is not None and gql.schema_file is not None:
        if "://" in gql.schema_file:
            found.append((("graphql", "schema"), "the schema must be a file beside the "
                          "connector (import a URL with `patchwire connector import "
                          "--introspect URL`)"))
        else:
            try:
                schema = load_schema(gql.schema_file)
            except GraphQLSchemaError as exc:
                found.append((("graphql", "schema"), str(exc)))
    if gql is not None and gql.cost is not None:
        for key in ("remaining", "retry_after", "reset_at"):
            source = getattr(gql.cost, key)
            if source:
                try:
                    compile_expression(source)
                except ExpressionError as exc:
                    found.append((("graphql", "cost", key), str(exc)))
    for name, action in spec.actions.items():
        op_spec = action.graphql
        if op_spec is None:
            continue
        base: _Loc = ("actions", name, "graphql")
        try:
            parsed = parse_operation(op_spec.document, op_spec.operation)
        except GraphQLDocumentError:
            continue  # reported by the model's own validation
        if schema is not None:
            found.extend(((*base, "document"), m) for m in _validation_messages(schema, parsed))
        pagination = action.pagination or spec.pagination
        found.extend(_variable_problems(base, action.input, parsed, pagination))
        if pagination.style == "relay" and pagination.cursor_variable not in parsed.variables:
            found.append(((*base, "document"), f"relay pagination sends the cursor in "
                          f"${pagination.cursor_variable}, which the operation does not "
                          f"declare (add `${pagination.cursor_variable}: String` to it)"))
        if op_spec.data is not None:
            try:
                compile_expression(op_spec.data)
            except ExpressionError as exc:
                found.append(((*base, "data"), str(exc)))
    return found


def _variable_problems(base: _Loc, schema: Mapping[str, Any], parsed: ParsedOperation,
                       pagination: Any) -> list[tuple[_Loc, str]]:
    """A variable the operation needs must be an argument the caller has to give: else
    the call could only ever fail at the upstream. Variables a walk over pages fills in
    (cursor, page, offset, page size) are the walk's to give."""
    properties = schema.get("properties")
    props = set(properties) if isinstance(properties, Mapping) else set()
    required = set(schema.get("required") or ())
    walk = {pagination.cursor_variable, pagination.cursor_param, pagination.page_param,
            pagination.offset_param, pagination.limit_param} if pagination.style != "none" \
        else set()
    found: list[tuple[_Loc, str]] = []
    for name in parsed.required_variables:
        if name in walk:
            continue
        if name not in props:
            found.append(((*base, "document"), f"variable ${name} is required by the "
                          "operation but is not a property of the action's input schema"))
        elif name not in required:
            found.append(((*base[:-1], "input", "required"), f"variable ${name} is required "
                          "by the operation (non-null, no default): list it in input.required"))
    return found


def _validation_messages(schema: GraphQLSchema, parsed: ParsedOperation) -> list[str]:
    from graphql import validate

    errors = validate(schema, parsed.document)
    return [f"{e.message.rstrip('.')}{where_in_document(e)}" for e in errors[:20]]


# -- import -----------------------------------------------------------------------------------


def import_graphql(
    source: str | Path | bytes | Mapping[str, Any],
    *,
    name: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    fields: list[str] | None = None,
    depth: int = 2,
    mutations: bool = True,
    label: str | None = None,
    schema_ref: str | None = None,
) -> ImportResult:
    """A connector from a GraphQL schema: an SDL or introspection JSON file path, its
    text or bytes, or a parsed introspection result. One action per root field (``fields``
    chooses some by name), inputs from the arguments, a default selection set nested
    ``depth`` levels; ``schema_ref`` is written as the connector's ``graphql.schema``
    (the schema file, relative to where the connector is saved). Raises
    :class:`~patchwire.errors.OpenAPIImportError` (the import error of every format) when
    the schema cannot be read."""
    from patchwire.connectors._graphql_import import import_schema

    return import_schema(source, name=name, base_url=base_url, endpoint=endpoint,
                         fields=fields, depth=depth, mutations=mutations, label=label,
                         schema_ref=schema_ref)
