"""Compiling actions: an action's validator, templates and expressions prepared once,
then per call the request rendered from the arguments and the answer mapped (or turned
into the typed error its status and the connector's error rules say)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from patchwire.calls._adapters import ActionAdapter, adapter_for
from patchwire.calls._bodies import BinaryAnswer, read_answer, xml_body
from patchwire.calls._connection import BREAKS_HEADER, ResolvedConnection
from patchwire.calls._validation import InputSchema, json_path
from patchwire.connectors import MISSING, Template, compile_template, lookup, placeholders_in
from patchwire.connectors.spec import (
    ActionSpec,
    ConnectorSpec,
    ErrorRule,
    OAuth2Auth,
    RequestTemplate,
    TokenExchangeAuth,
)
from patchwire.errors import (
    ERROR_KINDS,
    CallContext,
    InputValidationError,
    RequestRenderError,
    ResponseMappingError,
    UpstreamResponseError,
    ValidationProblem,
    error_kind_for_status,
)
from patchwire.expressions import Expression, ExpressionError, compile_expression
from patchwire.http import PreparedRequest, RawResponse, Redactor, excerpt, parse_retry_after

__all__ = ["INPUT_ALL", "CompiledAction"]

#: a body of ``"{$input}"``: every argument not used in the path, query or headers; as a
#: value inside a body (``{properties: "{$input}"}``), every argument not used there nor
#: anywhere else in the body
INPUT_ALL = "{$input}"

#: ``query_arrays`` styles: the separator of a list's values (None: the parameter repeated)
_ARRAY_JOINS: dict[str, str | None] = {
    "comma": ",", "repeat": None, "space": " ", "pipe": "|", "tab": "\t"}


class CompiledAction:
    """An action with its validator, templates and expressions prepared once."""

    def __init__(self, connector: ConnectorSpec, name: str, action: ActionSpec) -> None:
        self.connector = connector
        self.name = name
        self.qualified = f"{connector.name}.{name}"
        self.spec = action
        self.input = InputSchema(action.input)
        #: GraphQL and SOAP actions: what builds their request and reads their answer
        self.adapter: ActionAdapter | None = adapter_for(connector, name, action)
        #: custom code actions: ``package.module:function`` (run by the call path)
        self.code = action.code
        req = action.request or RequestTemplate(method=action.method, path="/")
        self.method = req.method
        self.path = compile_template(req.path)
        self.path_segments = _placeholder_segments(req.path)
        self.query = [(k, _compile_value(v)) for k, v in req.query.items()]
        #: a list argument's separator per query parameter; None: one parameter per value
        self.query_joins: dict[str, str | None] = {
            k: _ARRAY_JOINS[style] for k, style in req.query_arrays.items()}
        self.headers = [(k, compile_template(v)) for k, v in req.headers.items()]
        self.body = req.body
        self.body_type = req.body_type
        used: set[str] = set(self.path.names)
        for _, v in self.query:
            used |= _names(v)
        for _, t in self.headers:
            used |= set(t.names)
        self.not_in_body = {n.split(".")[0] for n in used}
        #: a body holding ``"{$input}"`` as a value: the arguments that value leaves out
        #: (None: the body holds none, and rendering never builds the rest)
        self.rest_leaves_out: set[str] | None = (
            self.not_in_body | {n.split(".")[0] for n in placeholders_in(self.body)}
            if self.body != INPUT_ALL and _holds_input_all(self.body) else None)
        self.idempotent = action.is_idempotent
        self.response: Expression | None = (
            compile_expression(action.response) if action.response else None
        )
        self.response_needs_bindings = bool(
            action.response and ("$status" in action.response or "$headers" in action.response)
        )
        #: ``response: "$"`` (common in connectors): the body as it is, which is what the
        #: expression gives, without evaluating it on every call
        self.response_is_body = bool(action.response and action.response.strip() == "$")
        self.error_rules: list[ErrorRule] = [*action.errors, *connector.errors]
        #: rules reading failures that a success status reports in its body (Slack's
        #: 200 {"ok": false}); none for most connectors, which then never look
        self.success_error_rules = [r for r in self.error_rules if r.for_success]

    # -- input -----------------------------------------------------------------------------

    def validate(self, arguments: Any, context: CallContext) -> None:
        """Raise :class:`InputValidationError` unless the arguments fit the input schema."""
        self.input.check(arguments, context)

    def query_value(self, name: str, arguments: Mapping[str, Any]) -> str | None:
        """What query parameter ``name`` of this action is for ``arguments`` (None: not
        sent); pagination reads the page size a listing asks for from it."""
        for key, value_tpl in self.query:
            if key != name:
                continue
            value = _render_value(value_tpl, arguments)
            if value is MISSING or value is None:
                return None
            return (self._joined(key, value)
                    if isinstance(value, list) else _query_text(value))
        return None

    def _joined(self, key: str, values: list[Any]) -> str:
        return (self.query_joins.get(key) or ",").join(_query_text(v) for v in values)

    # -- request ---------------------------------------------------------------------------

    def render(
        self, arguments: Mapping[str, Any], conn: ResolvedConnection, context: CallContext
    ) -> PreparedRequest:
        if self.adapter is not None:
            return self.adapter.render(arguments, conn, context)
        path = self.path.render(arguments, encode=_encode_path_segment)
        if path is MISSING:
            raise RequestRenderError(
                f"cannot build the path {self.path.source!r}: an argument is missing",
                context=context,
            )
        # Only a rendered path holding "/." or an empty segment can hold a segment that
        # URL normalisation would remove ("..", "."): one substring test on most calls.
        if "/." in path or "//" in path or path.endswith("/"):
            self._refuse_dot_segments(path, arguments, context)
        headers = dict(conn.headers)
        for name, tpl in self.headers:
            value = tpl.render(arguments)
            if value is not MISSING and value is not None:
                text = _query_text(value)
                if BREAKS_HEADER.search(text):
                    # an argument must not be able to add headers of its own (injection)
                    raise RequestRenderError(
                        f"header {name!r} cannot carry a line break or NUL character "
                        f"(from the call's arguments)", context=context)
                headers[name] = text
        params: dict[str, str] | None = None
        repeated: list[tuple[str, str]] = []
        if self.query or conn.query or (conn.auth and conn.auth.query):
            # the connector's own parameters first: an action's parameter of that name wins
            params = dict(conn.query)
            for key, value_tpl in self.query:
                value = _render_value(value_tpl, arguments)
                if value is MISSING or value is None:
                    continue
                if not isinstance(value, list):
                    params[key] = _query_text(value)
                elif key in self.query_joins and self.query_joins[key] is None:
                    # `ids=1&ids=2`: a mapping of params holds one value per name, so the
                    # repeats go into the URL, which the transports extend with the rest
                    repeated.extend((key, _query_text(v)) for v in value)
                else:
                    params[key] = self._joined(key, value)
            if conn.auth:
                params.update(conn.auth.query)
        url = conn.base_url + str(path)
        if repeated:
            url += ("&" if "?" in url else "?") + urlencode(repeated, quote_via=quote)
        req = PreparedRequest(
            method=self.method,
            url=url,
            headers=headers,
            params=params or None,
            cookies=dict(conn.auth.cookies) if conn.auth and conn.auth.cookies else None,
            idempotent=self.idempotent,
            credentials=conn.credential_headers,
        )
        if self.body is not None:
            if self.body == INPUT_ALL:
                body: Any = {k: v for k, v in arguments.items() if k not in self.not_in_body}
            else:
                rest = (None if self.rest_leaves_out is None else
                        {k: v for k, v in arguments.items() if k not in self.rest_leaves_out})
                body = _render_body(self.body, arguments, rest, top=True)
            if body is not MISSING:
                self._attach_body(req, body, context)
        return req

    def _refuse_dot_segments(
        self, path: str, arguments: Mapping[str, Any], context: CallContext
    ) -> None:
        """A path argument names one item: it must not make its segment ``..``, ``.`` or
        empty, which URL normalisation (ours or any proxy's) turns into another path —
        ``/orgs/acme/members/..`` is ``/orgs/acme/``. Encoded values hold no ``/``, so the
        rendered path has the template's segments, in order."""
        rendered = path.split("?", 1)[0].split("/")
        problems: list[ValidationProblem] = []
        for index, names in self.path_segments:
            segment = rendered[index] if index < len(rendered) else ""
            if segment not in ("", ".", ".."):
                continue
            culprits = [n for n in names
                        if str(_path_value(arguments, n)) in ("", ".", "..")] or list(names)
            for name in culprits:
                what = "empty" if segment == "" else f"{segment!r}"
                problems.append(ValidationProblem(
                    json_path(name.split(".")),
                    f"cannot be {what} here: a path argument names one item and cannot "
                    f"change which path is requested"))
        if problems:
            raise InputValidationError(problems, context=context)

    def _attach_body(self, req: PreparedRequest, body: Any, context: CallContext) -> None:
        if self.body_type == "json":
            req.data = orjson.dumps(body)
            _default_header(req.headers, "Content-Type", "application/json")
        elif self.body_type == "form":
            if not isinstance(body, dict):
                raise RequestRenderError("a form body must be a mapping", context=context)
            # encoded here, as aiohttp's FormData would (quote_plus, UTF-8), so the request
            # is plain bytes the HTTP core's own connections can send
            req.data = urlencode([(str(k), _form_text(v)) for k, v in body.items()
                                  if v is not None]).encode()
            _default_header(req.headers, "Content-Type", "application/x-www-form-urlencoded")
        elif self.body_type == "xml":
            req.data = xml_body(body, context)
            _default_header(req.headers, "Content-Type", "application/xml")
        else:
            if not isinstance(body, dict):
                raise RequestRenderError("a multipart body must be a mapping", context=context)
            form = aiohttp.FormData()
            for k, v in body.items():
                if v is None:
                    continue
                if isinstance(v, dict) and "content" in v:
                    form.add_field(
                        k,
                        _file_bytes(v["content"]),
                        filename=str(v.get("filename", k)),
                        content_type=str(v.get("content_type", "application/octet-stream")),
                    )
                else:
                    form.add_field(k, _form_text(v))
            req.data = form

    # -- response --------------------------------------------------------------------------

    def map_response(
        self, raw: RawResponse, arguments: Mapping[str, Any], context: CallContext,
        redact: Redactor,
    ) -> Any:
        if self.adapter is not None:
            return self.adapter.map_response(raw, arguments, context, redact)
        body = _parse_body(raw, context, redact, self.connector.max_blob_bytes)
        if isinstance(body, BinaryAnswer):
            # the bytes are stored by the call path (async; this is not): the mapping sees
            # the blob's metadata, the call path gets the result and the blob to keep
            return body.holding(self._mapped(body.meta, raw, context, redact))
        return self._mapped(body, raw, context, redact)

    def _mapped(self, body: Any, raw: RawResponse, context: CallContext,
                redact: Redactor) -> Any:
        if self.response is None or self.response_is_body:
            return body
        bindings = (
            {"status": raw.status, "headers": dict(raw.headers)}
            if self.response_needs_bindings else None
        )
        try:
            return self.response.evaluate(body, bindings)
        except ExpressionError as exc:
            raise ResponseMappingError(
                f"response mapping {self.response.source!r} failed: {redact(str(exc))}",
                context=context,
            ) from None

    def failure_in_success(
        self, raw: RawResponse, arguments: Mapping[str, Any], context: CallContext,
        redact: Redactor,
    ) -> UpstreamResponseError | None:
        """The typed error a 2xx answer's body reports by one of the success rules
        (``status: 200, when: ok = false``), or None: the answer is a success."""
        try:
            body: Any = _parse_body(raw, context, redact, None)
        except ResponseMappingError:
            return None  # not data the rules can read: the mapping says what is wrong
        bindings = {"status": raw.status, "input": dict(arguments)}
        for rule in self.success_error_rules:
            if not rule.matches_status(raw.status):
                continue
            try:
                if rule.when and compile_expression(rule.when).evaluate(body, bindings):
                    return self.error_for(raw, arguments, context, redact)
            except ExpressionError:
                continue  # a broken rule must not turn a success into a failure
        return None

    def error_for(
        self, raw: RawResponse, arguments: Mapping[str, Any], context: CallContext,
        redact: Redactor,
    ) -> UpstreamResponseError:
        if self.adapter is not None:
            adapted = self.adapter.error_for(raw, arguments, context, redact)
            if adapted is not None:
                return adapted
        try:
            body: Any = _parse_body(raw, context, redact, None)
        except ResponseMappingError:
            body = raw.body.decode("utf-8", errors="replace")
        text = excerpt(raw.body, redact)
        retry_after = parse_retry_after(raw.headers.get("Retry-After"))
        bindings = {"status": raw.status, "input": dict(arguments)}
        kind = error_kind_for_status(raw.status)
        message: str | None = None
        for rule in self.error_rules:
            if not rule.matches_status(raw.status):
                continue
            try:
                if rule.when and not compile_expression(rule.when).evaluate(body, bindings):
                    continue
                kind = ERROR_KINDS[rule.error]
                if rule.message:
                    value = compile_expression(rule.message).evaluate(body, bindings)
                    message = None if value is None else redact(str(value))
            except ExpressionError:
                continue  # a broken rule must not hide the upstream's answer
            break
        if message is None:
            message = _default_message(raw.status, body, redact)
        error = kind(
            f"{self.qualified} failed with HTTP {raw.status}: {message}",
            status=raw.status,
            body_excerpt=text,
            retry_after=retry_after,
            context=context,
        )
        auth = self.connector.auth
        if isinstance(auth, OAuth2Auth | TokenExchangeAuth):
            error.token_expired = _signals_expiry(auth, raw.status, body)
        return error


# -- helpers ----------------------------------------------------------------------------------


def _compile_value(value: Any) -> Any:
    if isinstance(value, str):
        return compile_template(value)
    if isinstance(value, list):
        return [_compile_value(v) for v in value]
    return value


def _names(value: Any) -> set[str]:
    if isinstance(value, Template):
        return set(value.names)
    if isinstance(value, list):
        return set().union(*(_names(v) for v in value)) if value else set()
    return set()


def _render_value(value: Any, arguments: Mapping[str, Any]) -> Any:
    if isinstance(value, Template):
        return value.render(arguments)
    if isinstance(value, list):
        items = [_render_value(v, arguments) for v in value]
        return [i for i in items if i is not MISSING]
    return value


def _render_body(value: Any, arguments: Mapping[str, Any], rest: dict[str, Any] | None,
                 *, top: bool = False) -> Any:
    if isinstance(value, str):
        if value == INPUT_ALL and rest is not None:
            return rest
        return compile_template(value).render(arguments)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            rendered = _render_body(v, arguments, rest)
            if rendered is not MISSING:
                out[k] = rendered
        # An object inside the body whose every member was an absent optional argument is
        # left out, not sent as {}: many APIs refuse an empty object where they take none
        # (an empty one the connector writes, ``options: {}``, is sent as written).
        if value and not out and not top:
            return MISSING
        return out
    if isinstance(value, list):
        return [r for r in (_render_body(v, arguments, rest) for v in value) if r is not MISSING]
    return value


def _holds_input_all(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_input_all(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_input_all(v) for v in value)
    return isinstance(value, str) and value == INPUT_ALL


#: what quote(..., safe="") leaves as it is: most ids, which then skip its ~0.5 µs
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch


def _encode_path_segment(text: str) -> str:
    # Every reserved character is encoded: an id like "a/../b" must stay one path segment.
    if (text.isalnum() and text.isascii()) or _UNRESERVED(text) is not None:
        return text
    return quote(text, safe="")


def _placeholder_segments(path: str) -> list[tuple[int, tuple[str, ...]]]:
    """(index, placeholder names) of each segment of a path template (before any ``?``)
    that holds placeholders."""
    out = []
    for index, segment in enumerate(path.split("?", 1)[0].split("/")):
        names = compile_template(segment).names
        if names:
            out.append((index, names))
    return out


def _path_value(arguments: Mapping[str, Any], name: str) -> Any:
    value = lookup(arguments, tuple(name.split(".")))
    return "" if value is MISSING or value is None else value


def _default_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set ``name`` unless the connector or action already did, in any letter case."""
    lowered = name.lower()
    if not any(k.lower() == lowered for k in headers):
        headers[name] = value


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


_form_text = _query_text


def _file_bytes(content: Any) -> bytes:
    if isinstance(content, bytes):
        return content
    text = str(content)
    if text.startswith("base64:"):
        from base64 import b64decode

        return b64decode(text[len("base64:") :])
    return text.encode()


def _signals_expiry(auth: OAuth2Auth | TokenExchangeAuth, status: int, body: Any) -> bool:
    """Whether an error answer says the OAuth2 access token expired: its status is one of
    ``refresh_on_status``, or ``refresh_on_body`` (JSONata, ``$status`` bound) is true."""
    if status in auth.refresh_on_status:
        return True
    if auth.refresh_on_body is None:
        return False
    try:
        return bool(compile_expression(auth.refresh_on_body).evaluate(body, {"status": status}))
    except ExpressionError:
        return False  # a broken signal must not hide the upstream's answer


def _parse_body(raw: RawResponse, context: CallContext, redact: Redactor,
                max_blob_bytes: int | None) -> Any:
    """The answer's body by its content type (``_bodies.py``: JSON, XML, CSV, text, or
    a binary answer to keep; ``max_blob_bytes`` None for an error answer: nothing kept)."""
    return read_answer(raw, context, redact, max_blob_bytes=max_blob_bytes)


def _default_message(status: int, body: Any, redact: Redactor) -> str:
    if isinstance(body, dict):
        for candidate in (body.get("error"), body.get("message"), body.get("detail"),
                          body.get("title")):
            if isinstance(candidate, dict):
                candidate = candidate.get("message") or candidate.get("detail")
            if isinstance(candidate, str) and candidate:
                return redact(candidate)[:300]
    return {401: "unauthorised: check the connection's credentials",
            403: "forbidden: the credentials lack permission",
            404: "not found", 409: "conflict", 422: "the upstream rejected the input",
            429: "rate limited by the upstream"}.get(status, "upstream error")
