"""GraphQL actions: an operation POSTed as JSON, its answer read the GraphQL way.

The request is ``{"query": <the document as written>, "variables": {...},
"operationName": ...}``: the arguments become variables, never text in the document, so
an argument holding GraphQL syntax (``") { deleteAll }``) stays a string value.

The answer (GraphQL over HTTP): a 200 may still carry ``errors``.

- ``errors`` without data: the call fails with the typed error their codes or messages
  say (``extensions.code``/``type``: UNAUTHENTICATED/FORBIDDEN → auth, NOT_FOUND →
  not found, GRAPHQL_VALIDATION_FAILED/BAD_USER_INPUT → validation, RATE_LIMITED/THROTTLED
  → rate limited with the wait from ``extensions``), the same classes as a REST status.
- ``data`` and ``errors`` (partial data): the call succeeds and its result says so:
  ``{"partial": true, "data": <mapped data>, "errors": [{message, path, code}]}`` — the
  parts that resolved stay usable, and nobody mistakes them for the whole answer.
- ``data`` alone: the result is ``GraphQLOperationSpec.data`` (JSONata over ``data``), by
  default the operation's only root field (``{"repository": {...}}`` → ``{...}``).

A declared cost rule (``graphql.cost``) is read from every answer; when it says the
budget is spent, :meth:`GraphQLAdapter.pause_after` says how long, and the call path has
the HTTP core pause the connection's rate-limit bucket as after a 429 (``HttpCore.pause``),
so the next calls wait for the reset instead of being refused.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from patchwire.calls._connection import ResolvedConnection
from patchwire.connectors.graphql import parse_operation
from patchwire.connectors.spec import ActionSpec, ConnectorSpec, GraphQLCost, OAuth2Auth
from patchwire.errors import (
    AuthError,
    CallContext,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ResponseMappingError,
    UpstreamError,
    UpstreamResponseError,
    UpstreamValidationError,
    error_kind_for_status,
)
from patchwire.expressions import Expression, ExpressionError, compile_expression
from patchwire.http import (
    PreparedRequest,
    RawResponse,
    Redactor,
    excerpt,
    parse_retry_after,
)

__all__ = ["GraphQLAdapter", "classify_errors"]

#: errors of one answer looked at to classify it and listed in a partial result: a
#: hostile or broken upstream may send millions
MAX_ERRORS_READ = 50
MAX_ERRORS_KEPT = 10
MAX_MESSAGE = 300

_CODES: dict[str, type[UpstreamResponseError]] = {
    "UNAUTHENTICATED": AuthError, "UNAUTHORIZED": AuthError, "FORBIDDEN": AuthError,
    "ACCESS_DENIED": AuthError, "INSUFFICIENT_SCOPES": AuthError,
    "NOT_FOUND": NotFoundError,
    "GRAPHQL_VALIDATION_FAILED": UpstreamValidationError,
    "GRAPHQL_PARSE_FAILED": UpstreamValidationError,
    "BAD_USER_INPUT": UpstreamValidationError, "BAD_REQUEST": UpstreamValidationError,
    "INVALID_ARGUMENT": UpstreamValidationError, "ARGUMENT_ERROR": UpstreamValidationError,
    "RATE_LIMITED": RateLimitedError, "THROTTLED": RateLimitedError,
    "MAX_COST_EXCEEDED": RateLimitedError, "TOO_MANY_REQUESTS": RateLimitedError,
    "CONFLICT": ConflictError,
}
#: servers without codes (graphql-js, graphql-core) still word their errors alike
_MESSAGES: tuple[tuple[re.Pattern[str], type[UpstreamResponseError]], ...] = (
    (re.compile(r"rate.?limit|throttl|too many requests", re.I), RateLimitedError),
    (re.compile(r"unauthori[sz]ed|unauthenticated|not authenticated|forbidden|permission|"
                r"access denied|bad credentials|must have .*(scope|access)", re.I), AuthError),
    (re.compile(r"not found|could not resolve to|does not exist|no such", re.I),
     NotFoundError),
    (re.compile(r"^(syntax error|cannot query field|unknown (argument|type|fragment)|"
                r"variable \"\$|field \".*\" argument|expected (value|type)|argument \"|"
                r"int cannot|string cannot|float cannot|boolean cannot|enum \")", re.I),
     UpstreamValidationError),
)
#: when several errors classify differently, the one that tells the caller most wins
_PRIORITY = (RateLimitedError, AuthError, NotFoundError, UpstreamValidationError,
             ConflictError, UpstreamError)
_RETRY_KEYS = ("retryAfter", "retry_after", "retryAfterSeconds", "retry_after_seconds")


class GraphQLAdapter:
    """Builds an operation's request and reads its answer (``calls/_adapters.py``)."""

    def __init__(self, connector: ConnectorSpec, name: str, action: ActionSpec) -> None:
        op = action.graphql
        assert op is not None
        self.connector = connector
        self.name = name
        self.qualified = f"{connector.name}.{name}"
        self.action = action
        parsed = parse_operation(op.document, op.operation)
        self.variables = parsed.variables
        # The document goes out as written: only variables change between calls, so the
        # upstream's own document cache (persisted queries, parse cache) hits.
        self.document = op.document
        self.operation_name = op.operation
        gql = connector.graphql
        self.endpoint = gql.endpoint if gql is not None else "/graphql"
        self.cost: GraphQLCost | None = gql.cost if gql is not None else None
        self._cost_exprs = (
            (compile_expression(self.cost.remaining),
             compile_expression(self.cost.retry_after) if self.cost.retry_after else None,
             compile_expression(self.cost.reset_at) if self.cost.reset_at else None)
            if self.cost is not None else None)
        self.data: Expression | None = compile_expression(op.data) if op.data else None
        #: the default mapping: the only root field's key (None: data as it is)
        self.root_key = (parsed.root_keys[0] if self.data is None and parsed.root_keys
                         and len([k for k in parsed.root_keys if k != "__typename"]) == 1
                         else None)
        self.response: Expression | None = (
            compile_expression(action.response)
            if action.response and action.response.strip() != "$" else None)
        self.idempotent = action.is_idempotent
        #: per connection's header mapping: it merged with this action's defaults, so a
        #: call copies one dict instead of scanning for each default header
        self._headers: tuple[dict[str, str], dict[str, str]] | None = None
        #: the answer the cost rule just parsed, read again by map_response: the call
        #: path calls both with no await between them (one event loop thread)
        self._parsed: tuple[RawResponse, Any] | None = None

    # -- request ---------------------------------------------------------------------------

    def render(self, arguments: Mapping[str, Any], conn: ResolvedConnection,
               context: CallContext) -> PreparedRequest:
        variables = {k: arguments[k] for k in self.variables if k in arguments}
        payload: dict[str, Any] = {"query": self.document, "variables": variables}
        if self.operation_name is not None:
            payload["operationName"] = self.operation_name
        cached = self._headers
        if cached is None or cached[0] is not conn.headers:
            merged = dict(conn.headers)
            _default_header(merged, "Content-Type", "application/json")
            _default_header(merged, "Accept",
                            "application/graphql-response+json, application/json;q=0.9")
            cached = self._headers = (conn.headers, merged)
        headers = dict(cached[1])
        auth = conn.auth
        return PreparedRequest(
            method="POST",
            url=conn.base_url + self.endpoint,
            headers=headers,
            params=dict(auth.query) if auth is not None and auth.query else None,
            cookies=dict(auth.cookies) if auth is not None and auth.cookies else None,
            data=orjson.dumps(payload),
            idempotent=self.idempotent,
            credentials=conn.credential_headers,
        )

    # -- answer ----------------------------------------------------------------------------

    def map_response(self, raw: RawResponse, arguments: Mapping[str, Any],
                     context: CallContext, redact: Redactor) -> Any:
        body = self._answer(raw, context, redact)
        errors = body.get("errors")
        data = body.get("data")
        if errors:
            listed = _error_list(errors)
            if data is None or (isinstance(data, Mapping) and not any(
                    v is not None for v in data.values())):
                raise self._error(raw, body, listed, context, redact)
            return {"partial": True, "data": self._map_data(data, context, redact),
                    "errors": [_summary(e, redact) for e in listed[:MAX_ERRORS_KEPT]],
                    **({"errors_total": len(errors)} if isinstance(errors, list)
                       and len(errors) > MAX_ERRORS_KEPT else {})}
        if data is None:
            raise ResponseMappingError(
                f"{self.qualified}: the GraphQL answer has neither data nor errors: "
                f"{excerpt(raw.body, redact, 120)!r}", context=context)
        return self._map_data(data, context, redact)

    def error_for(self, raw: RawResponse, arguments: Mapping[str, Any],
                  context: CallContext, redact: Redactor) -> UpstreamResponseError | None:
        """A non-2xx answer holding GraphQL errors (GraphQL over HTTP answers 4xx for
        documents it refuses): typed by its errors, else by its status. Anything else is
        left to the REST rules."""
        try:
            body = orjson.loads(raw.body) if raw.body else None
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict) or not body.get("errors"):
            return None
        error = self._error(raw, body, _error_list(body["errors"]), context, redact)
        if raw.status in (401, 403, 404, 429) and type(error) is UpstreamError:
            error = _retype(error, error_kind_for_status(raw.status))
        if error.retry_after is None:
            error.retry_after = parse_retry_after(raw.headers.get("Retry-After"))
        return error

    def _answer(self, raw: RawResponse, context: CallContext,
                redact: Redactor) -> dict[str, Any]:
        parsed, self._parsed = self._parsed, None
        try:
            body = parsed[1] if parsed is not None and parsed[0] is raw else orjson.loads(
                raw.body)
        except orjson.JSONDecodeError:
            raise ResponseMappingError(
                f"{self.qualified}: the GraphQL endpoint answered HTTP {raw.status} with "
                f"something other than JSON: {excerpt(raw.body, redact, 120)!r}",
                context=context) from None
        if not isinstance(body, dict):
            raise ResponseMappingError(
                f"{self.qualified}: a GraphQL answer is a JSON object with data or errors, "
                f"not a {_json_type(body)}", context=context)
        return body

    def _map_data(self, data: Any, context: CallContext, redact: Redactor) -> Any:
        if not isinstance(data, dict):
            raise ResponseMappingError(
                f"{self.qualified}: a GraphQL answer's data is an object, not a "
                f"{_json_type(data)}", context=context)
        try:
            if self.data is not None:
                result = self.data.evaluate(data)
            elif self.root_key is not None:
                result = data.get(self.root_key)
            else:
                result = data
            if self.response is not None:
                result = self.response.evaluate(result)
        except ExpressionError as exc:
            raise ResponseMappingError(
                f"{self.qualified}: mapping the GraphQL data failed: {redact(str(exc))}",
                context=context) from None
        return result

    def _error(self, raw: RawResponse, body: Mapping[str, Any], errors: list[Any],
               context: CallContext, redact: Redactor) -> UpstreamResponseError:
        kind = classify_errors(errors)
        first = _summary(errors[0], redact) if errors else {"message": "unknown error"}
        more = len(body["errors"]) - 1 if isinstance(body.get("errors"), list) else 0
        message = (f"{self.qualified} failed with GraphQL error: {first['message']}"
                   + (f" [{first['code']}]" if first.get("code") else "")
                   + (f" (and {more} more)" if more > 0 else ""))
        retry_after = _retry_after(errors) if kind is RateLimitedError else None
        if kind is RateLimitedError and retry_after is None:
            retry_after = self.cost_wait(body)
        error = kind(message, status=raw.status, body_excerpt=excerpt(raw.body, redact),
                     retry_after=retry_after, context=context)
        if kind is AuthError and isinstance(self.connector.auth, OAuth2Auth):
            # an expired token named by the answer itself: the call path renews it once
            error.token_expired = any(_code(e) == "UNAUTHENTICATED" for e in errors)
        return error

    # -- cost ------------------------------------------------------------------------------

    def pause_after(self, raw: RawResponse) -> float | None:
        """Seconds the connection must wait before its next call, when the cost rule says
        the budget is spent; None otherwise (or when the answer says nothing)."""
        self._parsed = None
        if self._cost_exprs is None or not raw.body:
            return None
        try:
            body = orjson.loads(raw.body)
        except orjson.JSONDecodeError:
            return None
        if raw.ok:
            self._parsed = (raw, body)  # map_response reads it next
        return self.cost_wait(body) if isinstance(body, dict) else None

    def cost_wait(self, body: Mapping[str, Any]) -> float | None:
        if self._cost_exprs is None or self.cost is None:
            return None
        remaining_expr, retry_expr, reset_expr = self._cost_exprs
        try:
            remaining = remaining_expr.evaluate(body)
            if not _is_number(remaining) or remaining >= self.cost.minimum:
                return None
            if retry_expr is not None:
                wait = retry_expr.evaluate(body)
                return max(0.0, float(wait)) if _is_number(wait) else None
            assert reset_expr is not None
            return _seconds_until(reset_expr.evaluate(body))
        except ExpressionError:
            return None  # a rule the answer does not fit must not fail the call


# -- helpers ----------------------------------------------------------------------------------


def classify_errors(errors: list[Any]) -> type[UpstreamResponseError]:
    """The error class a list of GraphQL errors stands for (the most telling one)."""
    kinds: set[type[UpstreamResponseError]] = set()
    for error in errors[:MAX_ERRORS_READ]:
        code = _code(error)
        kind = _CODES.get(code) if code else None
        if kind is None:
            message = _message(error)
            kind = next((k for pattern, k in _MESSAGES if pattern.search(message)),
                        UpstreamError)
        kinds.add(kind)
    return next((k for k in _PRIORITY if k in kinds), UpstreamError)


def _error_list(errors: Any) -> list[Any]:
    if isinstance(errors, list):
        return errors[:MAX_ERRORS_READ]
    return [errors]  # a server that sends one error object (or a string) instead of a list


def _code(error: Any) -> str | None:
    if not isinstance(error, dict):
        return None
    ext = error.get("extensions")
    for value in ((ext.get("code"), ext.get("type")) if isinstance(ext, dict) else ()):
        if isinstance(value, str) and value:
            return value.upper()
    value = error.get("type")  # GitHub puts it at the top level too
    return value.upper() if isinstance(value, str) and value else None


def _message(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        return message if isinstance(message, str) else ""
    return error if isinstance(error, str) else ""


def _summary(error: Any, redact: Redactor) -> dict[str, Any]:
    """One error as a caller sees it: message (redacted, cut), path, code."""
    out: dict[str, Any] = {"message": redact(_message(error) or "unknown error")[:MAX_MESSAGE]}
    if isinstance(error, dict):
        path = error.get("path")
        if isinstance(path, list) and all(isinstance(p, str | int) for p in path[:20]):
            out["path"] = path[:20]
    code = _code(error)
    if code:
        out["code"] = code[:60]
    return out


def _retry_after(errors: list[Any]) -> float | None:
    for error in errors[:MAX_ERRORS_READ]:
        ext = error.get("extensions") if isinstance(error, dict) else None
        if not isinstance(ext, dict):
            continue
        for key in _RETRY_KEYS:
            value = ext.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return max(0.0, float(value))
            if isinstance(value, str):
                parsed = parse_retry_after(value)
                if parsed is not None:
                    return parsed
    return None


def _seconds_until(value: Any) -> float | None:
    now = time.time()
    if _is_number(value):
        v = float(value)
        return max(0.0, v / 1000 - now if v > 1e11 else v - now)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _retype(error: UpstreamResponseError,
            kind: type[UpstreamResponseError]) -> UpstreamResponseError:
    retyped = kind(error.message, status=error.status, body_excerpt=error.body_excerpt,
                   retry_after=error.retry_after, context=error.context)
    retyped.token_expired = error.token_expired
    return retyped


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null", dict: "object"}.get(type(value), type(value).__name__)


def _default_header(headers: dict[str, str], name: str, value: str) -> None:
    lowered = name.lower()
    if not any(k.lower() == lowered for k in headers):
        headers[name] = value
