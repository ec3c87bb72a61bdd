"""Infer an imported list operation's ``pagination`` from what its description shows.

Applied to every operation the OpenAPI importer turns into an action (3.x documents and
converted Swagger 2.0 ones). The evidence is the operation's query parameters (by name)
and its success response: declared headers, and the JSON schema's fields (followed through
local ``$ref``\\s and ``allOf``, a few levels deep). In order of preference:

- ``link``: the success response declares a ``Link`` header (RFC 8288, GitHub style);
- ``cursor``: a cursor query parameter (``cursor``, ``after``, ``page_token``,
  ``next_token``, ``continue``, ``marker``...) and a next-cursor field in the response
  (``next_cursor``, ``response_metadata.next_cursor``, ``nextPageToken``,
  ``metadata.continue``...) or a next-cursor response header; or ``starting_after`` with
  ``has_more`` (Stripe style: the next cursor is the last record's ``id``);
- ``next_url``: a field holding the next page's URL (``next_url``, ``links.next``,
  ``@odata.nextLink``, a ``next`` string with a URI format);
- ``page``: a page-number parameter (``page``, ``page_number``...) with a page-size one
  (``per_page``, ``page_size``, ``limit``...) or a page-count field (``total_pages``);
- ``offset``: an offset parameter (``offset``, ``skip``, ``start_index``) with a limit one,
  or a ``has_more`` field.

A style is inferred only where the records of a page can be found too: the body is an
array, or one array field of it holds them (``items`` is then that field). Nothing found:
no ``pagination``, as before. A page or offset parameter the description marks required
is dropped from the input's ``required``: the paginator sends it on every page (the first
page's is ``first_page``, or offset 0), so the caller is not asked for it.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from typing import Any

from patchwire.connectors._openapi_schema import BadRefError, ExternalRefError, SchemaConverter

__all__ = ["infer_pagination"]

_CURSOR_PARAMS = frozenset({
    "cursor", "after", "pagetoken", "nexttoken", "startingafter", "continuationtoken",
    "continue", "marker", "startcursor", "pagecursor", "nextcursor", "afterid",
    "nextpagetoken", "offsettoken", "pagekey", "startkey", "scrollid",
})
_NEXT_CURSOR_FIELDS = frozenset({
    "nextcursor", "nextpagetoken", "nexttoken", "continuationtoken", "continue",
    "endcursor", "nextmarker", "marker", "nextpagecursor", "cursor", "after", "next",
    "nextkey", "lastevaluatedkey", "scrollid",
})
# Fields whose value is the next page's URL.
_NEXT_URL_FIELDS = frozenset({"nexturl", "nextpageurl", "nextlink", "odatanextlink",
                              "nextpagelink", "nexthref"})
_PAGE_PARAMS = frozenset({"page", "pagenumber", "pageno", "pagenum", "pageindex"})
_SIZE_PARAMS = frozenset({"perpage", "pagesize", "limit", "size", "count", "pagelimit",
                          "maxresults", "top", "maxitems", "take", "per"})
_OFFSET_PARAMS = frozenset({"offset", "skip", "startindex", "start"})
_TOTAL_PAGES_FIELDS = frozenset({"totalpages", "pages", "pagecount", "lastpage",
                                 "numpages", "pagetotal"})
_HAS_MORE_FIELDS = frozenset({"hasmore", "more", "hasnext", "hasnextpage", "moreitems",
                              "hasmoreitems", "hasmoreresults"})
# The records' field when a page holds more than one array.
_ITEM_FIELDS = ("data", "items", "results", "records", "entries", "values", "elements",
                "list", "objects", "hits", "nodes", "rows", "content", "value")
_PAGING_PARAMS = _CURSOR_PARAMS | _PAGE_PARAMS | _OFFSET_PARAMS
_CURSOR_HEADERS = ("cursor", "nextpagetoken", "continuationtoken", "nexttoken")
_JSON_TYPES = ("application/json", "*/*", "application/*")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JSONATA_WORDS = frozenset({"and", "or", "in", "true", "false", "null", "function"})
_NON_ALNUM = re.compile(r"[^a-z0-9]")
#: how deep response fields are looked for (response_metadata.next_cursor is 2)
_MAX_FIELD_DEPTH = 3
#: response fields looked at per operation, so a huge or hostile schema costs little
_MAX_NODES = 2000
_MAX_REF_HOPS = 16


#: one view per document being imported (its converter), gone with the converter
_views: weakref.WeakKeyDictionary[SchemaConverter, _SchemaView] = weakref.WeakKeyDictionary()


def _norm(name: str) -> str:
    return _NON_ALNUM.sub("", name.lower())


def infer_pagination(conv: SchemaConverter, method: str, op: Mapping[str, Any],
                     request: Mapping[str, Any],
                     input_schema: dict[str, Any]) -> dict[str, Any] | None:
    """The ``pagination`` mapping of an action, or None. ``request`` is the action's
    request template and ``input_schema`` its input (the required list of which loses a
    page or offset parameter the paginator fills)."""
    if method not in ("get", "post"):
        return None
    query = _query_params(request.get("query"))
    response = _success_response(conv, op)
    if response is None:
        return None
    headers = response.get("headers")
    header_names = ([str(h) for h in headers] if isinstance(headers, Mapping) else [])
    has_link = any(h.lower() == "link" for h in header_names)
    if not has_link and not any(_norm(wire) in _PAGING_PARAMS for wire in query):
        return None  # most operations: nothing to look at in the response
    view = _views.get(conv)
    if view is None:
        view = _views[conv] = _SchemaView(conv)
    body = view.resolve(_json_schema(response))
    fields = view.fields(body) if body is not None else []
    items = _items_path(view, body)
    if items is None:
        return None
    out: dict[str, Any] = {}
    if items:
        out["items"] = items
    size = _find_param(query, _SIZE_PARAMS)
    if size is not None:
        out["limit_param"] = size
    if has_link:
        return {"style": "link", **out}
    cursor = _cursor(view, query, fields, header_names, body, items)
    if cursor is not None:
        return {"style": "cursor", **cursor, **out}
    next_url = _next_url(fields)
    if next_url is not None:
        return {"style": "next_url", "next_url": next_url, **out}
    page_size = _page_size(input_schema, query, size)
    if page_size is not None:
        out["page_size"] = page_size
    page = _find_param(query, _PAGE_PARAMS)
    if page is not None:
        total = _first_field(fields, _TOTAL_PAGES_FIELDS, scalar=("integer", "number"))
        if size is not None or total is not None:
            spec: dict[str, Any] = {"style": "page", "page_param": page, **out}
            first = _first_page(input_schema, query[page])
            if first != 1:
                spec["first_page"] = first
            if total is not None:
                spec["total_pages"] = total
            _not_required(input_schema, query[page], first)
            return spec
    offset = _find_param(query, _OFFSET_PARAMS)
    if offset is not None:
        has_more = _first_field(fields, _HAS_MORE_FIELDS, scalar=("boolean",))
        if size is not None or has_more is not None:
            spec = {"style": "offset", "offset_param": offset, **out}
            if has_more is not None:
                spec["has_more"] = has_more
            _not_required(input_schema, query[offset], 0)
            return spec
    return None


# -- the request side ------------------------------------------------------------------


def _query_params(query: Any) -> dict[str, str]:
    """Wire name → input property, for the query parameters taken from the input."""
    out: dict[str, str] = {}
    if not isinstance(query, Mapping):
        return out
    for key, value in query.items():
        if "{" in key or "}" in key:
            continue  # a name with braces: leave it to a human
        if (isinstance(value, str) and value.startswith("{") and value.endswith("}")
                and value.count("{") == 1):
            out[key] = value[1:-1]
    return out


def _find_param(query: Mapping[str, str], names: frozenset[str]) -> str | None:
    for wire in query:
        if _norm(wire) in names:
            return wire
    return None


def _page_size(input_schema: Mapping[str, Any], query: Mapping[str, str],
               size: str | None) -> int | None:
    """The size parameter's declared default: what a walk asks for when the caller sets
    none (so a short page is known to be the last)."""
    if size is None:
        return None
    prop = _property(input_schema, query[size])
    default = prop.get("default") if prop is not None else None
    if isinstance(default, int) and not isinstance(default, bool) and default > 0:
        return default
    return None


def _first_page(input_schema: Mapping[str, Any], prop_name: str) -> int:
    prop = _property(input_schema, prop_name)
    if prop is not None:
        for key in ("minimum", "default"):
            if prop.get(key) == 0 and not isinstance(prop.get(key), bool):
                return 0
    return 1


def _property(input_schema: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    props = input_schema.get("properties")
    prop = props.get(name) if isinstance(props, Mapping) else None
    return prop if isinstance(prop, Mapping) else None


def _not_required(input_schema: dict[str, Any], prop_name: str, first: int) -> None:
    # The paginator sets the page (first_page, then the next) over whatever the caller
    # gives, so demanding it would only make a model invent one.
    required = input_schema.get("required")
    if isinstance(required, list) and prop_name in required:
        kept = [r for r in required if r != prop_name]
        if kept:
            input_schema["required"] = kept
        else:
            del input_schema["required"]
        # A plain call (not paginated) sends only what it is given: the default says what
        # the first page is. Property schemas may be shared (memoized): replaced, not changed.
        props = input_schema.get("properties")
        prop = props.get(prop_name) if isinstance(props, dict) else None
        if isinstance(props, dict) and isinstance(prop, Mapping) and "default" not in prop:
            props[prop_name] = {**prop, "default": first}


# -- the response side -----------------------------------------------------------------


def _success_response(conv: SchemaConverter, op: Mapping[str, Any]) -> Mapping[str, Any] | None:
    responses = op.get("responses")
    if not isinstance(responses, Mapping):
        return None
    codes = sorted(str(c) for c in responses if str(c).startswith("2"))
    if not codes:
        return None
    key = next((k for k in responses if str(k) == codes[0]), codes[0])
    try:
        response = conv.deref(responses[key])
    except (ExternalRefError, BadRefError):
        return None
    return response if isinstance(response, Mapping) else None


def _json_schema(response: Mapping[str, Any]) -> Any:
    content = response.get("content")
    if not isinstance(content, Mapping):
        return None
    for media_type, media in content.items():
        mt = str(media_type).split(";", 1)[0].strip().lower()
        if (mt in _JSON_TYPES or mt.endswith("+json")) and isinstance(media, Mapping):
            return media.get("schema")
    return None


class _SchemaView:
    """Reads response schemas: local refs followed, ``allOf`` merged, all bounded. One
    per document (many list operations answer the same schema: read once)."""

    def __init__(self, conv: SchemaConverter) -> None:
        self.conv = conv
        # id(body schema) → its fields; the schemas live in the document, as long as conv
        self.fields_of: dict[int, list[tuple[tuple[str, ...], Mapping[str, Any]]]] = {}

    def resolve(self, schema: Any) -> Mapping[str, Any] | None:
        seen: set[str] = set()
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if ref in seen or len(seen) >= _MAX_REF_HOPS:
                return None  # a loop of refs describes nothing
            seen.add(ref)
            try:
                schema = self.conv.lookup(ref)
            except (ExternalRefError, BadRefError):
                return None
        return schema if isinstance(schema, Mapping) else None

    def properties(self, schema: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
        """Own properties and those of ``allOf`` parts (not of oneOf/anyOf: not sure)."""
        out: dict[str, Any] = {}
        if depth > 4:
            return out
        parts = schema.get("allOf")
        if isinstance(parts, list):
            for part in parts[:_MAX_REF_HOPS]:
                resolved = self.resolve(part)
                if resolved is not None:
                    out.update(self.properties(resolved, depth + 1))
        props = schema.get("properties")
        if isinstance(props, Mapping):
            out.update({str(k): v for k, v in props.items()})
        return out

    def fields(self, body: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Mapping[str, Any]]]:
        """(path, resolved schema) of the body's fields, breadth first, a few levels deep,
        each schema object expanded once, nested ones up to _MAX_NODES fields in all."""
        known = self.fields_of.get(id(body))
        if known is None:
            known = self.fields_of[id(body)] = self._fields(body)
        return known

    def _fields(self, body: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Mapping[str, Any]]]:
        out: list[tuple[tuple[str, ...], Mapping[str, Any]]] = []
        expanded: set[int] = set()
        level: list[tuple[tuple[str, ...], Mapping[str, Any]]] = [((), body)]
        for _ in range(_MAX_FIELD_DEPTH):
            following: list[tuple[tuple[str, ...], Mapping[str, Any]]] = []
            for path, schema in level:
                if id(schema) in expanded:
                    continue
                expanded.add(id(schema))
                for name, raw in self.properties(schema).items():
                    if path and len(out) >= _MAX_NODES:
                        return out  # the body's own fields are all read, nested ones not
                    resolved = self.resolve(raw)
                    if resolved is None:
                        continue
                    out.append(((*path, name), resolved))
                    if _type(resolved) in ("object", None):
                        following.append(((*path, name), resolved))
            level = following
        return out


def _type(schema: Mapping[str, Any]) -> str | None:
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), None)
    if typ is None and isinstance(schema.get("properties"), Mapping):
        return "object"
    if typ is None and "items" in schema:
        return "array"
    return typ if isinstance(typ, str) else None


def _jsonata_path(path: tuple[str, ...]) -> str | None:
    parts: list[str] = []
    for name in path:
        if _IDENTIFIER.match(name) and name not in _JSONATA_WORDS:
            parts.append(name)
        elif "`" in name or not name:
            return None
        else:
            parts.append(f"`{name}`")
    return ".".join(parts)


def _items_path(view: _SchemaView, body: Mapping[str, Any] | None) -> str | None:
    """``""``: the body is the list; a JSONata path to the records' array; None: unknown."""
    if body is None:
        return None
    if _type(body) == "array":
        return ""
    arrays = [name for name, raw in view.properties(body).items()
              if (resolved := view.resolve(raw)) is not None and _type(resolved) == "array"]
    if len(arrays) == 1:
        return _jsonata_path((arrays[0],))
    for name in _ITEM_FIELDS:
        if name in arrays:
            return _jsonata_path((name,))
    return None


def _first_field(fields: list[tuple[tuple[str, ...], Mapping[str, Any]]],
                 names: frozenset[str], *, scalar: tuple[str, ...]) -> str | None:
    for path, schema in fields:
        if _norm(path[-1]) in names and _type(schema) in (*scalar, None):
            return _jsonata_path(path)
    return None


def _is_url(path: tuple[str, ...], schema: Mapping[str, Any]) -> bool:
    if _type(schema) not in ("string", None):
        return False
    name = _norm(path[-1])
    fmt = str(schema.get("format") or "").lower()
    if name in _NEXT_URL_FIELDS or fmt in ("uri", "url", "uri-reference"):
        return True
    # links.next, _links.next.href, paging.next: the next page's link
    parents = {_norm(p) for p in path[:-1]}
    return (name == "next" and bool(parents & {"links", "link", "paging"})) or (
        name == "href" and len(path) >= 2 and _norm(path[-2]) == "next")


def _cursor(view: _SchemaView, query: Mapping[str, str],
            fields: list[tuple[tuple[str, ...], Mapping[str, Any]]],
            header_names: list[str], body: Mapping[str, Any] | None,
            items: str) -> dict[str, Any] | None:
    param = _find_param(query, _CURSOR_PARAMS)
    if param is None:
        return None
    for path, schema in fields:
        if _norm(path[-1]) in _NEXT_CURSOR_FIELDS and _type(schema) in (
                "string", "integer", None) and not _is_url(path, schema):
            expr = _jsonata_path(path)
            if expr is not None and expr != items:
                return {"cursor_param": param, "next_cursor": expr}
    for header in header_names:
        if any(word in _norm(header) for word in _CURSOR_HEADERS):
            return {"cursor_param": param, "cursor_header": header}
    # Stripe style: starting_after=<the last record's id> while has_more is true.
    has_more = _first_field([f for f in fields if len(f[0]) == 1], _HAS_MORE_FIELDS,
                            scalar=("boolean",))
    if has_more is not None and items and _norm(param) in ("startingafter", "after",
                                                           "afterid"):
        record = _record_schema(view, body, items)
        if record is not None and "id" in view.properties(record):
            return {"cursor_param": param,
                    "next_cursor": f"{has_more} ? {items}[-1].id : null"}
    return None


def _record_schema(view: _SchemaView, body: Mapping[str, Any] | None,
                   items: str) -> Mapping[str, Any] | None:
    if body is None:
        return None
    array = view.resolve(view.properties(body).get(items.strip("`")))
    return view.resolve(array.get("items")) if array is not None else None


def _next_url(fields: list[tuple[tuple[str, ...], Mapping[str, Any]]]) -> str | None:
    for path, schema in fields:
        if _is_url(path, schema) and (
                _norm(path[-1]) in _NEXT_URL_FIELDS or "next" in _norm(path[-1])
                or (len(path) >= 2 and _norm(path[-2]) == "next")):
            return _jsonata_path(path)
    return None
