"""A connector from a GraphQL schema (``patchwire connector import schema.graphql``).

One action per chosen root field of the query and mutation types:

- its input schema from the field's arguments: scalars to JSON types (custom scalars to
  strings that say which scalar), enums to ``enum``, lists to arrays, input objects to
  objects (nested a bounded number of levels: a recursive input type stops there),
  non-null arguments without a default to ``required``;
- its document: the operation with one variable per argument (arguments are always sent
  as variables) and a bounded default selection set: the scalar fields first, then nested
  objects down to ``depth`` levels; a connection gets ``nodes`` and
  ``pageInfo { hasNextPage endCursor }``; fields needing arguments are left out; a root
  field returning a connection with ``first``/``after`` arguments pages Relay-style;
- names in snake_case (``createIssue`` → ``create_issue``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from patchwire.connectors._graphql_parse import (
    GraphQLSchemaError,
    introspection_of,
    schema_from_text,
)
from patchwire.connectors.openapi import ImportResult, SkippedItem, snake_case
from patchwire.connectors.spec import NAME_PATTERN, ActionSpec, ConnectorSpec
from patchwire.errors import OpenAPIImportError

if TYPE_CHECKING:
    from graphql import (
        GraphQLArgument,
        GraphQLField,
        GraphQLInputType,
        GraphQLNamedType,
        GraphQLSchema,
    )

__all__ = ["import_schema"]

#: input objects nested deeper than this become a described, open object (OpenAI allows
#: 10 levels of nesting in a tool's parameters; recursive input types have no bottom)
MAX_INPUT_DEPTH = 4
#: scalar fields selected per object, and nested objects per object, at the root field's
#: level and below it: GitHub's Repository has ~100 fields; a tool's answer must stay
#: readable (and a document short: graphql-core parses ~10 kB/ms... in pure Python)
MAX_SCALARS = (12, 6)
MAX_NESTED = (4, 2)
#: the page size asked of a connection selected inside another object
NESTED_PAGE = 10
#: relay page size of an action whose root field is a connection
PAGE_SIZE = 50
MAX_DESCRIPTION = 1000

_SCALARS: dict[str, dict[str, Any]] = {
    "String": {"type": "string"}, "ID": {"type": "string"},
    "Int": {"type": "integer"}, "Float": {"type": "number"},
    "Boolean": {"type": "boolean"},
}
_NAME_RE = re.compile(NAME_PATTERN)
#: scalar fields selected before any other: what identifies a thing to a person or a model
_IDENTITY = ("id", "name", "login", "title", "number", "state", "url", "email",
             "createdAt", "updatedAt")


def import_schema(
    source: str | Path | bytes | Mapping[str, Any], *, name: str | None = None,
    base_url: str | None = None, endpoint: str | None = None,
    fields: list[str] | None = None, depth: int = 2, mutations: bool = True,
    label: str | None = None, schema_ref: str | None = None,
) -> ImportResult:
    """See :func:`patchwire.connectors.graphql.import_graphql`."""
    schema, where = _load(source, label)
    if name is not None and not _NAME_RE.match(name):
        raise OpenAPIImportError(f"connector name {name!r} must be lower snake_case "
                                 "(a-z, 0-9, _; starting with a letter)")
    if depth < 0 or depth > 6:
        raise OpenAPIImportError(f"depth {depth} is out of range (0 to 6)")
    return _Importer(schema, where, name, base_url, endpoint, fields, depth, mutations,
                     schema_ref).run()


def _load(source: str | Path | bytes | Mapping[str, Any],
          label: str | None) -> tuple[GraphQLSchema, str]:
    from graphql import build_client_schema

    try:
        if isinstance(source, Mapping):
            where = label or "<introspection>"
            return build_client_schema(introspection_of(source, where)), where  # type: ignore[arg-type]
        if isinstance(source, bytes):
            where = label or "<bytes>"
            return schema_from_text(source.decode("utf-8-sig"), where), where
        if isinstance(source, str) and ("\n" in source or source.lstrip()[:1] in ("{", "#")
                                        or source.lstrip().startswith(("type ", "schema "))):
            where = label or "<text>"
            return schema_from_text(source, where), where
        path = Path(source)
        where = label or str(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise OpenAPIImportError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise OpenAPIImportError(f"{path}: cannot read file: {exc}") from None
        return schema_from_text(text, where), where
    except GraphQLSchemaError as exc:
        raise OpenAPIImportError(str(exc)) from None
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, OpenAPIImportError):
            raise
        raise OpenAPIImportError(f"{label or 'the schema'}: not a usable GraphQL schema: "
                                 f"{exc}") from None


@dataclass
class _Importer:
    schema: GraphQLSchema
    where: str
    name: str | None
    base_url: str | None
    endpoint: str | None
    fields: list[str] | None
    depth: int
    mutations: bool
    schema_ref: str | None
    skipped: list[SkippedItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _selections: dict[tuple[str, int, bool], str] = field(default_factory=dict)

    def run(self) -> ImportResult:
        wanted = set(self.fields) if self.fields else None
        found: set[str] = set()
        actions: dict[str, dict[str, Any]] = {}
        roots = [("query", self.schema.query_type)]
        if self.mutations:
            roots.append(("mutation", self.schema.mutation_type))
        for kind, root in roots:
            if root is None:
                continue
            for field_name, fdef in root.fields.items():
                action_name = _action_name(field_name)
                if wanted is not None:
                    if field_name not in wanted and action_name not in wanted:
                        continue
                    found |= {field_name, action_name}
                where = f"{kind} {root.name}.{field_name}"
                if fdef.deprecation_reason is not None and wanted is None:
                    self.skipped.append(SkippedItem(where, "deprecated: "
                                                    + _one_line(fdef.deprecation_reason)))
                    continue
                candidate, n = action_name, 2
                while candidate in actions:
                    candidate, n = f"{action_name}_{n}", n + 1
                actions[candidate] = self._action(kind, field_name, fdef)
        if wanted is not None:
            missing = sorted(f for f in wanted if f not in found)
            if missing:
                raise OpenAPIImportError(f"{self.where}: no root field named "
                                         f"{', '.join(missing)}")
        return ImportResult(self._build(actions), self.skipped, self.warnings, self.where)

    # -- the connector ---------------------------------------------------------------

    def _build(self, raw_actions: dict[str, dict[str, Any]]) -> ConnectorSpec:
        data: dict[str, Any] = {
            "name": self.name or _connector_name(self.where),
            "protocol": "graphql",
            "description": f"Imported from the GraphQL schema {self.where}.",
        }
        settings: dict[str, Any] = {}
        if self.base_url:
            data["base_url"] = self.base_url
        else:
            data["base_url"] = "{base_url}"
            settings["base_url"] = {"description": "the API's origin, e.g. "
                                    "https://api.example.com"}
            self.warnings.append("no base URL given: set the connection's base_url setting "
                                 "(or import with --base-url)")
        settings["token"] = {"secret": True, "description": "API token (bearer)"}
        data["settings"] = settings
        data["auth"] = {"type": "bearer", "token": "{token}"}
        graphql: dict[str, Any] = {"endpoint": self.endpoint or "/graphql"}
        if self.schema_ref:
            graphql["schema"] = self.schema_ref
        data["graphql"] = graphql
        actions: dict[str, ActionSpec] = {}
        for action_name, raw in raw_actions.items():
            try:
                actions[action_name] = ActionSpec.model_validate(raw)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                self.skipped.append(SkippedItem(
                    action_name, f"cannot express as an action: {first['msg']}"))
        try:
            return ConnectorSpec.model_validate({**data, "actions": actions})
        except ValidationError as exc:
            raise OpenAPIImportError(f"{self.where}: cannot build a connector: {exc}") from None

    def _action(self, kind: str, field_name: str, fdef: GraphQLField) -> dict[str, Any]:
        from graphql import get_named_type

        properties: dict[str, Any] = {}
        required: list[str] = []
        var_defs: list[str] = []
        call_args: list[str] = []
        for arg_name, arg in fdef.args.items():
            properties[arg_name] = self._input_schema(arg.type, 0, (), arg)
            if _is_required(arg):
                required.append(arg_name)
            # an argument with a default takes a nullable variable (allowed where the
            # argument has a default): left out, the upstream's default applies
            var_type = str(arg.type)
            if not _is_required(arg) and var_type.endswith("!"):
                var_type = var_type[:-1]
            var_defs.append(f"${arg_name}: {var_type}")
            call_args.append(f"{arg_name}: ${arg_name}")
        named = get_named_type(fdef.type)
        selection = self._selection(named, self.depth)
        op_name = field_name[:1].upper() + field_name[1:]
        head = f"{kind} {op_name}" + (f"({', '.join(var_defs)})" if var_defs else "")
        call = field_name + (f"({', '.join(call_args)})" if call_args else "")
        document = f"{head} {{\n  {call}{(' ' + selection) if selection else ''}\n}}\n"
        schema: dict[str, Any] = {"type": "object", "properties": properties,
                                  "additionalProperties": False}
        if required:
            schema["required"] = required
        action: dict[str, Any] = {"input": schema, "graphql": {"document": document}}
        description = _one_line(fdef.description or "")
        if description:
            action["summary"] = _first_sentence(description)
            if len(description) > len(action["summary"]):
                action["description"] = description[:MAX_DESCRIPTION]
        else:
            action["summary"] = f"{kind} {field_name}"
        if (_is_connection(named) and "first" in fdef.args and "after" in fdef.args):
            action["pagination"] = {"style": "relay", "cursor_variable": "after",
                                    "limit_param": "first", "page_size": PAGE_SIZE}
        return action

    # -- inputs ----------------------------------------------------------------------

    def _input_schema(self, type_: GraphQLInputType, level: int, path: tuple[str, ...],
                      arg: GraphQLArgument | None = None) -> dict[str, Any]:
        from graphql import (
            GraphQLEnumType,
            GraphQLInputObjectType,
            GraphQLList,
            GraphQLNonNull,
            GraphQLScalarType,
        )

        inner: Any = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        out: dict[str, Any]
        if isinstance(inner, GraphQLList):
            out = {"type": "array", "items": self._input_schema(inner.of_type, level, path)}
        elif isinstance(inner, GraphQLScalarType):
            out = dict(_SCALARS.get(inner.name) or {
                "type": "string", "description": f"a {inner.name} (GraphQL scalar)"
                + (f": {_one_line(inner.description)[:200]}" if inner.description else "")})
        elif isinstance(inner, GraphQLEnumType):
            out = {"type": "string", "enum": list(inner.values)}
        elif isinstance(inner, GraphQLInputObjectType):
            if level >= MAX_INPUT_DEPTH or inner.name in path:
                out = {"type": "object", "description": f"a {inner.name} (GraphQL input "
                       "object; nested too deep to describe here)"}
            else:
                props: dict[str, Any] = {}
                req: list[str] = []
                for fname, f in inner.fields.items():
                    props[fname] = self._input_schema(f.type, level + 1,
                                                      (*path, inner.name))
                    if _is_required(f):
                        req.append(fname)
                    if f.description and "description" not in props[fname]:
                        props[fname]["description"] = _one_line(f.description)[:MAX_DESCRIPTION]
                out = {"type": "object", "properties": props, "additionalProperties": False}
                if req:
                    out["required"] = req
        else:  # pragma: no cover - every input type is one of the above
            out = {}
        if arg is not None and arg.description and "description" not in out:
            out["description"] = _one_line(arg.description)[:MAX_DESCRIPTION]
        return out

    # -- selections ------------------------------------------------------------------

    def _selection(self, named: GraphQLNamedType, depth: int, top: bool = True) -> str:
        """``{ ... }`` for an object, interface or union; "" for a leaf type."""
        from graphql import GraphQLInterfaceType, GraphQLObjectType, GraphQLUnionType

        if isinstance(named, GraphQLUnionType):
            return "{ __typename }"
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            return ""
        key = (named.name, depth, top)
        cached = self._selections.get(key)
        if cached is not None:
            return cached
        self._selections[key] = "{ __typename }"  # a type met again on its own path
        if _is_connection(named):
            text = self._connection(named, depth, top)
        else:
            text = self._object(named, depth, top)
        self._selections[key] = text
        return text

    def _object(self, named: Any, depth: int, top: bool) -> str:
        from graphql import get_named_type, is_leaf_type

        scalars: list[str] = []
        nested: list[str] = []
        max_scalars = MAX_SCALARS[0 if top else 1]
        max_nested = MAX_NESTED[0 if top else 1]
        fields = sorted(named.fields.items(), key=lambda kv: 0 if kv[0] in _IDENTITY else 1)
        for fname, f in fields:
            if f.deprecation_reason is not None or any(_is_required(a) for a in f.args.values()):
                continue
            inner = get_named_type(f.type)
            if is_leaf_type(inner):
                if len(scalars) < max_scalars:
                    scalars.append(fname)
            elif depth > 0 and len(nested) < max_nested:
                sub = self._selection(inner, depth - 1, False)
                if sub and sub != "{ __typename }":
                    args = f"(first: {NESTED_PAGE})" if (
                        _is_connection(inner) and "first" in f.args) else ""
                    nested.append(f"{fname}{args} {sub}")
        # the fields that say which thing it is come first, the rest in schema order
        scalars.sort(key=lambda n: _IDENTITY.index(n) if n in _IDENTITY else len(_IDENTITY))
        parts = scalars + nested
        if not parts:
            return "{ __typename }"
        return "{ " + " ".join(parts) + " }"

    def _connection(self, named: Any, depth: int, top: bool) -> str:
        from graphql import get_named_type

        parts: list[str] = []
        if "totalCount" in named.fields:
            parts.append("totalCount")
        node_field = named.fields.get("nodes")
        if node_field is not None:
            node = self._selection(get_named_type(node_field.type), max(depth - 1, 0), top)
            parts.append(f"nodes {node}" if node else "nodes")
        else:
            edge = get_named_type(named.fields["edges"].type)
            node_type = get_named_type(edge.fields["node"].type)
            node = self._selection(node_type, max(depth - 1, 0), top)
            parts.append(f"edges {{ node {node} }}" if node else "edges { node }")
        parts.append("pageInfo { hasNextPage endCursor }")
        return "{ " + " ".join(parts) + " }"


def _is_connection(named: Any) -> bool:
    from graphql import GraphQLObjectType, get_named_type

    if not isinstance(named, GraphQLObjectType) or "pageInfo" not in named.fields:
        return False
    if "nodes" in named.fields:
        return True
    edges = named.fields.get("edges")
    if edges is None:
        return False
    edge = get_named_type(edges.type)
    return isinstance(edge, GraphQLObjectType) and "node" in edge.fields


def _is_required(arg: Any) -> bool:
    from graphql import GraphQLNonNull, Undefined

    return isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined


def _action_name(field_name: str) -> str:
    s = snake_case(field_name)
    if not s or not s[0].isalpha():
        s = "op_" + s
    return s


def _connector_name(where: str) -> str:
    stem = Path(where).stem if not where.startswith(("<", "http")) else ""
    if where.startswith("http"):
        from urllib.parse import urlsplit

        stem = (urlsplit(where).hostname or "").split(".")[-2:][0]
    s = snake_case(stem)[:40].strip("_")
    if not s or s in ("schema", "introspection"):
        return "graphql_api"
    return s if s[0].isalpha() else "api_" + s


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _first_sentence(text: str) -> str:
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    return (m.group(1) if m else text)[:200]
