"""Swagger 2.0 → OpenAPI 3.0 conversion of a parsed document (a new dict; the input is
never changed), so the 3.x importer (``openapi.py``) imports it like any 3.x document.

What maps to what:

- ``host`` + ``basePath`` + ``schemes`` → ``servers`` (https first; no ``host``: the
  ``basePath`` alone, a relative server the importer resolves or asks for);
- ``consumes``/``produces`` (the operation's, else the document's) → the media types of
  ``requestBody.content`` and of each response's ``content``;
- an ``in: body`` parameter → ``requestBody`` (one content entry per consumed type);
  ``in: formData`` parameters → one object schema under
  ``application/x-www-form-urlencoded``, or ``multipart/form-data`` when a parameter is a
  file (``type: file`` → ``string``/``binary``) or only multipart is consumed;
- ``collectionFormat`` → ``style``/``explode`` (csv: form/simple, ssv: spaceDelimited,
  pipes: pipeDelimited, multi: form + explode; tsv has no 3.0 style: form, kept as
  ``x-collectionFormat``, with a warning);
- ``securityDefinitions`` → ``components.securitySchemes``: basic → http basic, apiKey,
  oauth2 with its one flow (implicit, password, application → clientCredentials,
  accessCode → authorizationCode);
- ``definitions``/``parameters``/``responses`` → ``components.schemas``/``parameters``/
  ``responses`` with every local ``$ref`` rewritten (body and form parameters are inlined
  where used: in 3.0 they are request bodies, not parameters);
- ``x-nullable`` → ``nullable``; a string ``discriminator`` → ``{propertyName: ...}``;
  ``x-`` extensions are kept where they stood.

A document that is not a readable Swagger 2.0 document (wrong version, ``paths`` not a
mapping, a ``host`` that is not a host, an oversized ``basePath``...) raises
:class:`~patchwire.errors.OpenAPIImportError` naming the field. An operation that cannot be
converted (a parameter ``$ref`` loop or one pointing outside the document) is left out
and reported as skipped; the rest of the document still imports. ``$ref``\\s inside
schemas are rewritten, not followed: loops and outside references there are the 3.x
importer's to report, as for any 3.x document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from patchwire.errors import OpenAPIImportError

__all__ = ["OPENAPI_VERSION", "Swagger2Conversion", "convert_swagger2", "is_swagger2"]

#: the OpenAPI version of the converted document
OPENAPI_VERSION = "3.0.3"
#: a base path longer than this is not a path an API is served under, but an attack on
#: everything that handles the base URL afterwards (logs, records, every request's URL)
MAX_BASE_PATH = 2048
#: schemas nested deeper than this are refused rather than walked (each level is a stack
#: frame here and in the importer)
MAX_DEPTH = 200

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
# host[:port]: a DNS name or IPv4 address, or a bracketed IPv6 one
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9._~%!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_FORM_TYPES = (_FORM, _MULTIPART)
# Parameter keywords that are JSON Schema keywords in 3.0 (under `schema`).
_SCHEMA_KEYS = ("type", "format", "items", "default", "maximum", "exclusiveMaximum",
                "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
                "maxItems", "minItems", "uniqueItems", "enum", "multipleOf")
# Keywords whose value maps names to schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions"})
# Values that are data, not schemas: copied without rewriting.
_DATA_KEYS = frozenset({"example", "examples", "default", "enum", "const"})
_REF_PREFIXES = (("#/definitions/", "#/components/schemas/"),
                 ("#/parameters/", "#/components/parameters/"),
                 ("#/responses/", "#/components/responses/"))
_COLLECTION_FORMATS = ("csv", "ssv", "tsv", "pipes", "multi")
_OAUTH2_FLOWS = {"implicit": "implicit", "password": "password",
                 "application": "clientCredentials", "accessCode": "authorizationCode"}
# What each 2.0 flow must name (the 3.0 flow object requires the same URLs).
_FLOW_URLS = {"implicit": ("authorizationUrl",), "password": ("tokenUrl",),
              "application": ("tokenUrl",), "accessCode": ("authorizationUrl", "tokenUrl")}


@dataclass
class Swagger2Conversion:
    """The converted document, and what the conversion had to say about it."""

    document: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: (where, why) of operations and security schemes left out
    skipped: list[tuple[str, str]] = field(default_factory=list)


def is_swagger2(data: Any) -> bool:
    """Whether a parsed document says it is Swagger (any version: a wrong one is refused
    by :func:`convert_swagger2` with the reason)."""
    return isinstance(data, Mapping) and "swagger" in data


class _SkipOperation(Exception):
    """This operation cannot be converted; the message says why."""


def convert_swagger2(data: Mapping[str, Any], label: str) -> Swagger2Conversion:
    """Convert a Swagger 2.0 document (parsed) to an OpenAPI 3.0 one; ``label`` names the
    source in errors."""
    return _Converter(data, label).run()


def _rewrite_ref(ref: str) -> str:
    for old, new in _REF_PREFIXES:
        if ref.startswith(old):
            return new + ref[len(old):]
    return ref


def _extensions(node: Mapping[str, Any]) -> dict[str, Any]:
    # str(k) is k for the str keys of parsed JSON; YAML's odd keys (ints) never start "x-"
    return {k: v for k, v in node.items() if str(k)[:2] == "x-"}


class _Converter:
    def __init__(self, data: Mapping[str, Any], label: str) -> None:
        self.data = data
        self.label = label
        self.warnings: list[str] = []
        self.skipped: list[tuple[str, str]] = []
        self.consumes = self._media_list(data.get("consumes"), "consumes")
        self.produces = self._media_list(data.get("produces"), "produces")
        raw_params = data.get("parameters")
        self.global_params: Mapping[str, Any] = (
            raw_params if isinstance(raw_params, Mapping) else {})
        #: id(2.0 parameter) → its 3.0 form; the 2.0 objects live as long as self.data
        self.param_cache: dict[int, dict[str, Any]] = {}
        #: query collection formats other than csv, counted (actions send arrays as csv)
        self.not_csv: dict[str, int] = {}

    def fail(self, where: str, what: str) -> OpenAPIImportError:
        return OpenAPIImportError(f"{self.label}: {where}: {what}")

    # -- the whole document -----------------------------------------------------------

    def run(self) -> Swagger2Conversion:
        version = self.data.get("swagger")
        if str(version) != "2.0":
            raise self.fail("swagger", f"Swagger {version} is not supported (Swagger 2.0 "
                            "and OpenAPI 3.x are)")
        paths = self.data.get("paths")
        if not isinstance(paths, Mapping):
            what = "missing" if paths is None else f"a {type(paths).__name__}"
            raise self.fail("paths", f"must be a mapping of path to path item, not {what}")
        for key in ("definitions", "parameters", "responses", "securityDefinitions"):
            value = self.data.get(key)
            if value is not None and not isinstance(value, Mapping):
                raise self.fail(key, f"must be a mapping, not a {type(value).__name__}")
        out: dict[str, Any] = {"openapi": OPENAPI_VERSION}
        for key, value in self.data.items():
            if key in ("info", "tags", "externalDocs", "security") or (
                    isinstance(key, str) and key.startswith("x-")):
                out[str(key)] = value
        servers = self._servers()
        if servers:
            out["servers"] = servers
        out["paths"] = self._paths(paths)
        if self.not_csv.get("tsv"):
            self.warnings.append(
                f"{self.not_csv['tsv']} array query parameter(s) with collectionFormat tsv, "
                "which OpenAPI 3 has no style for: kept as x-collectionFormat, and actions "
                "send their values tab-separated")
        components = self._components()
        if components:
            out["components"] = components
        return Swagger2Conversion(out, self.warnings, self.skipped)

    def _media_list(self, value: Any, where: str) -> list[str] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(where, "must be a list of media types")
        return list(value)

    def _servers(self) -> list[dict[str, Any]]:
        host = self.data.get("host")
        base_path = self.data.get("basePath", "")
        if base_path is None:
            base_path = ""
        if not isinstance(base_path, str):
            raise self.fail("basePath", f"must be a string, not a {type(base_path).__name__}")
        if len(base_path) > MAX_BASE_PATH:
            raise self.fail("basePath", f"is {len(base_path)} characters long; more than "
                            f"{MAX_BASE_PATH} is not a base path")
        if base_path and (not base_path.startswith("/") or any(
                c.isspace() or c in "?#" for c in base_path)):
            raise self.fail("basePath", f"{base_path[:80]!r} must start with '/' and hold "
                            "no spaces, '?' or '#'")
        base_path = base_path.rstrip("/")
        schemes_raw = self.data.get("schemes")
        schemes: list[str] = []
        if schemes_raw is not None:
            if not isinstance(schemes_raw, list) or not all(
                    isinstance(s, str) for s in schemes_raw):
                raise self.fail("schemes", "must be a list of http, https, ws, wss")
            for s in schemes_raw:
                if s.lower() not in ("http", "https", "ws", "wss"):
                    raise self.fail("schemes", f"{s[:40]!r} is not one of http, https, ws, "
                                    "wss")
            schemes = [s.lower() for s in schemes_raw if s.lower() in ("http", "https")]
            if not schemes and schemes_raw:
                self.warnings.append("schemes: only WebSocket schemes; the API is taken "
                                     "as served over https")
        if host is None:
            # No host: the API is served from the document's own host (the importer
            # resolves a relative server against the document's URL, or asks for one).
            # ("/" when there is no basePath either: still the document's own host)
            return [{"url": base_path or "/"}]
        if not isinstance(host, str) or not _HOST_RE.match(host) or len(host) > 300:
            shown = host[:80] if isinstance(host, str) else type(host).__name__
            raise self.fail("host", f"{shown!r} is not a host name with an optional port "
                            "(no scheme, path or spaces)")
        if not schemes:
            schemes = ["https"]
        ordered = sorted(dict.fromkeys(schemes), key=lambda s: s != "https")
        return [{"url": f"{s}://{host}{base_path}"} for s in ordered]

    # -- components -------------------------------------------------------------------

    def _components(self) -> dict[str, Any]:
        components: dict[str, Any] = {}
        definitions = self.data.get("definitions")
        if isinstance(definitions, Mapping) and definitions:
            components["schemas"] = {
                str(k): self._schema(v, f"definitions.{k}", 0) for k, v in definitions.items()}
        params: dict[str, Any] = {}
        for key, raw in self.global_params.items():
            where = f"parameters.{key}"
            if not isinstance(raw, Mapping):
                raise self.fail(where, "must be a parameter object")
            if isinstance(raw.get("$ref"), str):
                params[str(key)] = {"$ref": _rewrite_ref(raw["$ref"])}
            elif raw.get("in") not in ("body", "formData"):
                # body and form parameters are inlined into the operations that use them
                params[str(key)] = self._parameter(raw, where)
        if params:
            components["parameters"] = params
        responses = self.data.get("responses")
        if isinstance(responses, Mapping) and responses:
            components["responses"] = {
                str(k): self._response(v, self.produces, f"responses.{k}")
                for k, v in responses.items()}
        schemes = self._security_schemes()
        if schemes:
            components["securitySchemes"] = schemes
        return components

    def _security_schemes(self) -> dict[str, Any]:
        raw = self.data.get("securityDefinitions")
        out: dict[str, Any] = {}
        if not isinstance(raw, Mapping):
            return out
        for name, scheme in raw.items():
            where = f"securityDefinitions.{name}"
            if not isinstance(scheme, Mapping):
                self.skipped.append((where, "not a security scheme object"))
                continue
            converted = self._security_scheme(scheme)
            if isinstance(converted, str):
                self.skipped.append((where, converted))
                continue
            if isinstance(scheme.get("description"), str):
                converted["description"] = scheme["description"]
            out[str(name)] = {**converted, **_extensions(scheme)}
        return out

    @staticmethod
    def _security_scheme(scheme: Mapping[str, Any]) -> dict[str, Any] | str:
        kind = scheme.get("type")
        if kind == "basic":
            return {"type": "http", "scheme": "basic"}
        if kind == "apiKey":
            if scheme.get("in") not in ("header", "query") or not isinstance(
                    scheme.get("name"), str):
                return "apiKey scheme needs 'in' (header or query) and 'name'"
            return {"type": "apiKey", "in": scheme["in"], "name": scheme["name"]}
        if kind == "oauth2":
            flow = scheme.get("flow")
            if flow not in _OAUTH2_FLOWS:
                return (f"oauth2 flow {str(flow)[:40]!r} is not one of implicit, password, "
                        "application, accessCode")
            spec: dict[str, Any] = {}
            for url_key in _FLOW_URLS[str(flow)]:
                url = scheme.get(url_key)
                if not isinstance(url, str) or not url:
                    return f"oauth2 {flow} flow without its {url_key}"
                spec[url_key] = url
            scopes = scheme.get("scopes")
            spec["scopes"] = ({str(k): str(v) for k, v in scopes.items()}
                              if isinstance(scopes, Mapping) else {})
            return {"type": "oauth2", "flows": {_OAUTH2_FLOWS[str(flow)]: spec}}
        return f"security scheme type {str(kind)[:40]!r} is not one of basic, apiKey, oauth2"

    # -- paths ------------------------------------------------------------------------

    def _paths(self, paths: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path_key, item in paths.items():
            path = str(path_key)
            if not isinstance(item, Mapping):
                out[path] = item  # the importer reports it
                continue
            if isinstance(item.get("$ref"), str):
                # A path item elsewhere: a 2.0 one cannot be converted from here.
                out[path] = {"$ref": item["$ref"]}
                continue
            new_item: dict[str, Any] = _extensions(item)
            try:
                shared = self._resolve_params(item.get("parameters"), path)
            except _SkipOperation as exc:
                for method in _METHODS:
                    if method in item:
                        self.skipped.append((f"{method.upper()} {path}", str(exc)))
                continue
            plain_shared = [p for p in shared if p[1].get("in") not in ("body", "formData")]
            if plain_shared:
                new_item["parameters"] = [self._param_out(r, p, f"{path} parameters")
                                          for r, p in plain_shared]
            for method_key, op in item.items():
                method = str(method_key).lower()
                if method not in _METHODS:
                    continue
                where = f"{method.upper()} {path}"
                if not isinstance(op, Mapping):
                    new_item[method] = op  # the importer reports it
                    continue
                try:
                    new_item[method] = self._operation(op, shared, where)
                except _SkipOperation as exc:
                    self.skipped.append((where, str(exc)))
            out[path] = new_item
        return out

    def _resolve_params(self, raw: Any,
                        where: str) -> list[tuple[str | None, Mapping[str, Any]]]:
        """(the component ref it came from or None, the parameter object) of a list."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.warnings.append(f"{where}: 'parameters' is not a list; ignored")
            return []
        out: list[tuple[str | None, Mapping[str, Any]]] = []
        for index, param in enumerate(raw):
            ref: str | None = None
            seen: set[str] = set()
            while isinstance(param, Mapping) and isinstance(param.get("$ref"), str):
                target = param["$ref"]
                if not target.startswith("#/parameters/"):
                    if not target.startswith("#"):
                        raise _SkipOperation(f"parameter $ref {target[:200]!r} points outside "
                                             "the document; bundle it into one file first")
                    raise _SkipOperation(f"parameter $ref {target[:200]!r} does not point "
                                         "into #/parameters/")
                if target in seen:
                    raise _SkipOperation(f"parameter $ref {target[:200]!r}: reference cycle")
                seen.add(target)
                ref = ref or target
                key = target[len("#/parameters/"):].replace("~1", "/").replace("~0", "~")
                if key not in self.global_params:
                    raise _SkipOperation(f"parameter $ref {target[:200]!r}: no such parameter")
                param = self.global_params[key]
            if (not isinstance(param, Mapping) or not isinstance(param.get("name"), str)
                    or param.get("in") not in ("path", "query", "header", "body",
                                               "formData")):
                self.warnings.append(f"{where}: parameters[{index}] has no valid name and "
                                     "'in' (path, query, header, body, formData); left out")
                continue
            out.append((ref, param))
        return out

    def _operation(self, op: Mapping[str, Any],
                   shared: list[tuple[str | None, Mapping[str, Any]]],
                   where: str) -> dict[str, Any]:
        new: dict[str, Any] = {}
        for key in ("tags", "summary", "description", "externalDocs", "operationId",
                    "deprecated", "security"):
            if key in op:
                new[key] = op[key]
        new.update(_extensions(op))
        own = self._resolve_params(op.get("parameters"), where)
        # Path-level first, the operation's winning a clash (same name and location).
        merged: dict[tuple[str, str], tuple[str | None, Mapping[str, Any]]] = {}
        for ref, param in [*shared, *own]:
            merged[(param["name"], param["in"])] = (ref, param)
        consumes = self._media_list(op.get("consumes"), f"{where} consumes") or self.consumes
        produces = self._media_list(op.get("produces"), f"{where} produces") or self.produces
        params: list[Any] = []
        body: Mapping[str, Any] | None = None
        form: list[Mapping[str, Any]] = []
        for ref, param in merged.values():
            loc = param["in"]
            if loc == "body":
                if body is not None:
                    self.warnings.append(f"{where}: more than one body parameter; the last "
                                         "one is used")
                body = param
            elif loc == "formData":
                form.append(param)
            else:
                params.append(self._param_out(ref, param, where))
        if params:
            new["parameters"] = params
        if body is not None and form:
            raise _SkipOperation("has both a body parameter and formData parameters (Swagger "
                                 "2.0 allows one or the other)")
        if body is not None:
            new["requestBody"] = self._body(body, consumes, where)
        elif form:
            new["requestBody"] = self._form_body(form, consumes, where)
        responses = op.get("responses")
        if isinstance(responses, Mapping):
            new["responses"] = {str(code): self._response(resp, produces,
                                                          f"{where} responses.{code}")
                                for code, resp in responses.items()}
        else:
            new["responses"] = {"default": {"description": ""}}
        own_schemes = op.get("schemes")
        if isinstance(own_schemes, list) and own_schemes and set(map(str, own_schemes)) != set(
                map(str, self.data.get("schemes") or ["https"])):
            self.warnings.append(f"{where}: its own schemes are not kept; it is called on "
                                 "the connector's base URL")
        return new

    # -- parameters -------------------------------------------------------------------

    def _param_out(self, ref: str | None, param: Mapping[str, Any], where: str) -> Any:
        if ref is not None:
            return {"$ref": _rewrite_ref(ref)}
        # One converted object per parameter object: a path-level parameter shared by
        # every method converts once, and the importer's memo (by identity) then hits.
        cached = self.param_cache.get(id(param))
        if cached is None:
            cached = self.param_cache[id(param)] = self._parameter(param, where)
        return cached

    def _parameter(self, param: Mapping[str, Any], where: str) -> dict[str, Any]:
        loc = param.get("in")
        name = param.get("name")
        out: dict[str, Any] = {"name": name, "in": loc}
        if isinstance(param.get("description"), str):
            out["description"] = param["description"]
        if loc == "path" or param.get("required") is True:
            out["required"] = True
        if param.get("allowEmptyValue") is True and loc == "query":
            out["allowEmptyValue"] = True
        out["schema"] = self._simple_schema(param, f"{where} parameter {name}", 0)
        style = self._style(param, str(loc), f"{where} parameter {name}")
        if style is not None:
            out.update(style)
        if "x-example" in param:
            out["example"] = param["x-example"]
        out.update(_extensions(param))
        return out

    def _style(self, param: Mapping[str, Any], loc: str, where: str,
               *, count: bool = True) -> dict[str, Any] | None:
        """``style``/``explode`` of an array parameter (``collectionFormat``, csv if none)."""
        if param.get("type") != "array":
            return None
        fmt = param.get("collectionFormat", "csv")
        if fmt not in _COLLECTION_FORMATS:
            shown = str(fmt)[:40]
            self.warnings.append(f"{where}: collectionFormat {shown!r} is not one of "
                                 f"{', '.join(_COLLECTION_FORMATS)}; taken as csv")
            fmt = "csv"
        if loc in ("path", "header"):
            if fmt != "csv":
                self.warnings.append(f"{where}: collectionFormat {fmt!r} has no {loc} style "
                                     "in OpenAPI 3; taken as csv (simple)")
            return {"style": "simple", "explode": False}
        if count and fmt != "csv":
            self.not_csv[str(fmt)] = self.not_csv.get(str(fmt), 0) + 1
        if fmt == "multi":
            return {"style": "form", "explode": True}
        if fmt == "ssv":
            return {"style": "spaceDelimited", "explode": False}
        if fmt == "pipes":
            return {"style": "pipeDelimited", "explode": False}
        if fmt == "tsv":
            # no OpenAPI 3 style: kept as an extension (counted in not_csv's warning)
            return {"style": "form", "explode": False, "x-collectionFormat": "tsv"}
        return {"style": "form", "explode": False}

    def _simple_schema(self, node: Mapping[str, Any], where: str, depth: int) -> dict[str, Any]:
        """The schema of a non-body parameter, header or ``items`` object."""
        if depth > MAX_DEPTH:
            raise self.fail(where, f"items nested deeper than {MAX_DEPTH} levels")
        schema: dict[str, Any] = {}
        for key in _SCHEMA_KEYS:
            if key not in node:
                continue
            value = node[key]
            if key == "items" and isinstance(value, Mapping):
                if isinstance(value.get("$ref"), str):
                    schema["items"] = {"$ref": _rewrite_ref(value["$ref"])}
                else:
                    schema["items"] = self._simple_schema(value, where, depth + 1)
            else:
                schema[key] = value
        if schema.get("type") == "file":
            schema["type"] = "string"
            schema["format"] = "binary"
        if node.get("x-nullable") is True:
            schema["nullable"] = True
        return schema

    # -- bodies -----------------------------------------------------------------------

    def _body(self, param: Mapping[str, Any], consumes: list[str] | None,
              where: str) -> dict[str, Any]:
        schema = self._schema(param.get("schema", {}), f"{where} body", 0)
        types = consumes or ["application/json"]
        out: dict[str, Any] = {"content": {t: {"schema": schema} for t in types}}
        if isinstance(param.get("description"), str):
            out["description"] = param["description"]
        if param.get("required") is True:
            out["required"] = True
        if isinstance(param.get("name"), str):
            out["x-body-name"] = param["name"]
        out.update(_extensions(param))
        return out

    def _form_body(self, params: list[Mapping[str, Any]], consumes: list[str] | None,
                   where: str) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        encoding: dict[str, Any] = {}
        has_file = False
        for param in params:
            name = str(param["name"])
            prop = self._simple_schema(param, f"{where} formData {name}", 0)
            if isinstance(param.get("description"), str):
                prop["description"] = param["description"]
            prop.update(_extensions(param))
            has_file = has_file or param.get("type") == "file"
            properties[name] = prop
            if param.get("required") is True:
                required.append(name)
            style = self._style(param, "query", f"{where} formData {name}", count=False)
            if style is not None:
                encoding[name] = {k: v for k, v in style.items() if not k.startswith("x-")}
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        declared = [t for t in consumes or [] if t.split(";", 1)[0].strip().lower()
                    in _FORM_TYPES]
        if has_file:
            # Files travel only in multipart bodies, whatever else is declared.
            types = [t for t in declared if t.lower().startswith(_MULTIPART)] or [_MULTIPART]
            if consumes and not any(t.lower().startswith(_MULTIPART) for t in consumes):
                self.warnings.append(f"{where}: a file form parameter without multipart/"
                                     "form-data in consumes; sent as multipart/form-data")
        else:
            types = declared or [_FORM]
        content: dict[str, Any] = {}
        for t in types:
            media: dict[str, Any] = {"schema": schema}
            if encoding:
                media["encoding"] = encoding
            content[t] = media
        out: dict[str, Any] = {"content": content}
        if required:
            out["required"] = True
        return out

    # -- responses --------------------------------------------------------------------

    def _response(self, resp: Any, produces: list[str] | None, where: str) -> Any:
        if not isinstance(resp, Mapping):
            return resp  # the importer ignores what it cannot read in responses
        if isinstance(resp.get("$ref"), str):
            return {"$ref": _rewrite_ref(resp["$ref"])}
        description = resp.get("description")
        out: dict[str, Any] = {"description": description if isinstance(description, str)
                               else ""}
        if "schema" in resp:
            schema = self._schema(resp["schema"], f"{where} schema", 0)
            examples = resp.get("examples")
            content: dict[str, Any] = {}
            for t in produces or ["*/*"]:
                media: dict[str, Any] = {"schema": schema}
                if isinstance(examples, Mapping) and t in examples:
                    media["example"] = examples[t]
                content[t] = media
            out["content"] = content
        headers = resp.get("headers")
        if isinstance(headers, Mapping) and headers:
            out["headers"] = {}
            for name, header in headers.items():
                if not isinstance(header, Mapping):
                    continue
                h: dict[str, Any] = {"schema": self._simple_schema(
                    header, f"{where} headers.{name}", 0)}
                if isinstance(header.get("description"), str):
                    h["description"] = header["description"]
                h.update(_extensions(header))
                out["headers"][str(name)] = h
        out.update(_extensions(resp))
        return out

    # -- schemas ----------------------------------------------------------------------

    def _schema(self, node: Any, where: str, depth: int) -> Any:
        """A 2.0 schema as a 3.0 one: refs rewritten, 2.0-only keywords converted."""
        if depth > MAX_DEPTH:
            raise self.fail(where, f"schema nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, list):
            return [self._schema(v, where, depth + 1) for v in node]
        if not isinstance(node, Mapping):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out["$ref"] = _rewrite_ref(value)
            elif key in _DATA_KEYS or (isinstance(key, str) and key.startswith("x-")):
                if key == "x-nullable" and value is True:
                    out["nullable"] = True
                out[key] = value
            elif key == "discriminator" and isinstance(value, str):
                out["discriminator"] = {"propertyName": value}
            elif key == "type" and value == "file":
                out["type"] = "string"
                out["format"] = "binary"
            elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
                # name → schema: a property may be called "default", "enum" or "$ref"
                out[key] = {k: self._schema(v, where, depth + 1) for k, v in value.items()}
            elif isinstance(value, Mapping | list):
                out[key] = self._schema(value, where, depth + 1)
            else:
                out[key] = value
        return out
