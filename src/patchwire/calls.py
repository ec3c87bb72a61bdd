"""Action execution: validate input → render request → HTTP core → map response → record.

Everything that can be computed before a call is computed once: each action is compiled
(validator, templates, expressions) on first use, each connection resolved (settings
merged, secrets decrypted, auth rendered, redactor built) and cached briefly, so the per
call work is rendering a few templates and one HTTP exchange.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import jsonschema_rs
import orjson

from patchwire.auth import AuthParts, MissingCredential, render_auth
from patchwire.connectors import MISSING, Template, compile_template, lookup, setting_value_problems
from patchwire.connectors.spec import ActionSpec, ConnectorSpec, ErrorRule, OAuth2Auth
from patchwire.errors import (
    ERROR_KINDS,
    CallContext,
    CallError,
    InputValidationError,
    RequestRenderError,
    ResponseMappingError,
    UpstreamResponseError,
    ValidationProblem,
    error_kind_for_status,
)
from patchwire.expressions import Expression, ExpressionError, compile_expression
from patchwire.http import (
    HttpCore,
    PreparedRequest,
    RawResponse,
    Redactor,
    RetryDecision,
    excerpt,
    parse_retry_after,
)
from patchwire.ids import new_id
from patchwire.observability import observe_call, remember_secrets
from patchwire.store.records import CallRecord, ConnectionRecord

__all__ = [
    "CallOutcome", "CompiledAction", "RequestAdjuster", "ResolvedConnection", "execute_call",
]

INPUT_ALL = "{$input}"

#: changes a rendered request before it is sent (see ``execute_call``)
RequestAdjuster = Callable[[PreparedRequest, CallContext], None]


@dataclass(frozen=True, slots=True)
class ResolvedConnection:
    """A connection ready for calls. Holds decrypted secrets: never log or serialise it."""

    record: ConnectionRecord
    connector: ConnectorSpec
    base_url: str
    auth: AuthParts | None  # None: a required credential is missing (reported at call time)
    missing_credential: str | None
    headers: dict[str, str]
    redact: Redactor
    loaded_at: float = field(default_factory=time.monotonic)
    #: OAuth2 only: the access token in use and when it expires (epoch seconds), so the
    #: call path can renew it before it lapses and tell a refresher which token was refused
    access_token: str | None = None
    token_expires_at: float | None = None
    #: names (lower case) of the headers carrying credentials: the auth scheme's, and any
    #: connector header holding a secret. A redirect to another origin drops them.
    credential_headers: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"ResolvedConnection({self.record.name!r}, connector={self.connector.name!r})"

    @classmethod
    def build(
        cls, record: ConnectionRecord, connector: ConnectorSpec, secrets: Mapping[str, Any]
    ) -> ResolvedConnection:
        values: dict[str, Any] = {
            k: s.default for k, s in connector.settings.items() if s.default is not None
        }
        values.update(record.settings)
        values.update(secrets)
        auth: AuthParts | None
        missing_credential: str | None = None
        try:
            auth = render_auth(connector.auth, values)
        except MissingCredential as exc:
            auth, missing_credential = None, exc.setting
        # Every credential the calls use, each in every encoding, worked out once here:
        # the secrets and what the auth scheme made of them (`Basic base64(user:secret)`).
        redact = Redactor([*(str(v) for v in secrets.values() if v), *_credentials(auth)])
        remember_secrets(v for v in secrets.values() if v)  # observability: logs redact them
        problems = setting_value_problems(connector, values)
        if problems:
            # e.g. a subdomain of "127.0.0.1:8080/steal?" would send the credentials there
            raise RequestRenderError(
                f"connection {record.name!r}: {redact(problems[0])} (fix it with "
                f"`patchwire connection update {record.name} --set ...`)",
                context=CallContext(connection=record.name))
        base = compile_template(connector.base_url).render(values)
        if base is MISSING:
            missing = [n for n in compile_template(connector.base_url).names if n not in values]
            raise RequestRenderError(
                f"connection {record.name!r} lacks setting {missing[0]!r} needed by "
                f"{connector.name}'s base_url",
                context=CallContext(connection=record.name),
            )
        parsed = urlsplit(str(base))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise RequestRenderError(
                f"connection {record.name!r}: {connector.name}'s base URL must be an absolute "
                f"http(s) URL, got {redact(str(base))!r} (check its settings)",
                context=CallContext(connection=record.name),
            )
        headers: dict[str, str] = {}
        for k, v in connector.headers.items():
            rendered = compile_template(v).render(values)
            if rendered is not MISSING:
                headers[k] = str(rendered)
        if auth is not None:
            headers.update(auth.headers)
        for name, text in headers.items():
            if _BREAKS_HEADER.search(text):
                raise RequestRenderError(
                    f"connection {record.name!r}: header {name!r} of {connector.name} would "
                    f"carry a line break or NUL character (check its settings)",
                    context=CallContext(connection=record.name))
        secret_values = [str(v) for v in secrets.values() if v]
        credential_headers = frozenset(
            name.lower() for name, text in headers.items()
            if (auth is not None and name in auth.headers)
            or any(secret in text for secret in secret_values))
        return cls(record, connector, str(base).rstrip("/"), auth, missing_credential,
                   headers, redact, credential_headers=credential_headers)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one successful call produced, with how it went."""

    result: Any
    status: int
    attempts: int
    latency_ms: float
    request_id: str
    #: the upstream's answer as received: pagination reads cursors, links and records from
    #: the body and headers rather than from the mapped result
    raw: RawResponse | None = field(default=None, repr=False, compare=False)


class CompiledAction:
    """An action with its validator, templates and expressions prepared once."""

    def __init__(self, connector: ConnectorSpec, name: str, action: ActionSpec) -> None:
        self.connector = connector
        self.name = name
        self.qualified = f"{connector.name}.{name}"
        self.spec = action
        # jsonschema-rs: the same 2020-12 semantics at well under a microsecond a call,
        # where the pure-Python validator cost ~20 µs on the hot path.
        self.validator = jsonschema_rs.Draft202012Validator(action.input, validate_formats=True)
        req = action.request
        self.method = req.method
        self.path = compile_template(req.path)
        self.path_segments = _placeholder_segments(req.path)
        self.query = [(k, _compile_value(v)) for k, v in req.query.items()]
        self.headers = [(k, compile_template(v)) for k, v in req.headers.items()]
        self.body = req.body
        self.body_type = req.body_type
        used: set[str] = set(self.path.names)
        for _, v in self.query:
            used |= _names(v)
        for _, t in self.headers:
            used |= set(t.names)
        self.not_in_body = {n.split(".")[0] for n in used}
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

    # -- input -----------------------------------------------------------------------------

    def validate(self, arguments: Any, context: CallContext) -> None:
        if self.validator.is_valid(arguments):
            return
        errors = sorted(self.validator.iter_errors(arguments),
                        key=lambda e: [str(p) for p in e.instance_path])
        raise InputValidationError([_problem(e) for e in errors], context=context)

    # -- request ---------------------------------------------------------------------------

    def render(
        self, arguments: Mapping[str, Any], conn: ResolvedConnection, context: CallContext
    ) -> PreparedRequest:
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
                if _BREAKS_HEADER.search(text):
                    # an argument must not be able to add headers of its own (injection)
                    raise RequestRenderError(
                        f"header {name!r} cannot carry a line break or NUL character "
                        f"(from the call's arguments)", context=context)
                headers[name] = text
        params: dict[str, str] | None = None
        if self.query or (conn.auth and conn.auth.query):
            params = {}
            for key, value_tpl in self.query:
                value = _render_value(value_tpl, arguments)
                if value is MISSING or value is None:
                    continue
                params[key] = (
                    ",".join(_query_text(v) for v in value)
                    if isinstance(value, list) else _query_text(value)
                )
            if conn.auth:
                params.update(conn.auth.query)
        req = PreparedRequest(
            method=self.method,
            url=conn.base_url + str(path),
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
                body = _render_body(self.body, arguments)
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
                    _json_path(name.split(".")),
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
        body = _parse_body(raw, context, redact)
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

    def error_for(
        self, raw: RawResponse, arguments: Mapping[str, Any], context: CallContext,
        redact: Redactor,
    ) -> UpstreamResponseError:
        try:
            body: Any = _parse_body(raw, context, redact)
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
        if isinstance(auth, OAuth2Auth):
            error.token_expired = _signals_expiry(auth, raw.status, body)
        return error


# -- execution --------------------------------------------------------------------------------


async def execute_call(
    compiled: CompiledAction,
    arguments: Mapping[str, Any],
    conn: ResolvedConnection,
    http: HttpCore,
    *,
    request_id: str | None = None,
    run_id: str | None = None,
    adjust_request: RequestAdjuster | None = None,
) -> tuple[CallOutcome | None, CallError | None, CallRecord]:
    """Run one call. Returns (outcome, error, record); exactly one of outcome/error is set.

    ``adjust_request`` changes the rendered request before it is sent (pagination sets the
    next page's query parameters or URL there); a ``CallError`` it raises fails the call.
    """
    record_id = new_id()
    # Our own request ids double as record ids; a caller's may repeat, so it gets its own.
    request_id = request_id or record_id
    context = CallContext(
        action=compiled.qualified, connection=conn.record.name, request_id=request_id,
        run_id=run_id, method=compiled.method,
    )
    started_wall = time.time()
    started = time.perf_counter()
    decision = RetryDecision()
    status: int | None = None
    req: PreparedRequest | None = None
    try:
        compiled.validate(arguments, context)
        if conn.auth is None:
            raise RequestRenderError(
                f"connection {conn.record.name!r} has no value for {conn.missing_credential!r}, "
                f"which {compiled.connector.name}'s {compiled.connector.auth.type} auth needs; "
                f"set it with `patchwire connection add ... --set {conn.missing_credential}=...`",
                context=context,
            )
        req = compiled.render(arguments, conn, context)
        if adjust_request is not None:
            adjust_request(req, context)
        req.headers["X-Request-Id"] = request_id
        raw = await http.send(
            req, timeouts=compiled.connector.timeouts, retry=compiled.connector.retry,
            context=context, decision=decision, connector=compiled.connector,
            connection=conn.record.name,
        )
        status = raw.status
        if not raw.ok:
            error = compiled.error_for(raw, arguments, context, conn.redact)
            if error.retry_after is None and decision.retry_after is not None:
                # the wait came from a reset header, not Retry-After: still say when
                error.retry_after = decision.retry_after
            raise error
        result = compiled.map_response(raw, arguments, context, conn.redact)
    except CallError as exc:
        latency = (time.perf_counter() - started) * 1000
        if req is not None:
            context.url = conn.redact(req.url)
        record = _record(compiled, conn, record_id, request_id, "error", status, latency,
                         decision.attempts, exc.code, conn.redact(exc.message), started_wall,
                         decision.rate_limit_wait)
        return None, exc, record
    latency = (time.perf_counter() - started) * 1000
    record = _record(compiled, conn, record_id, request_id, "ok", status, latency,
                     decision.attempts, None, None, started_wall, decision.rate_limit_wait)
    outcome = CallOutcome(result, status, decision.attempts, latency, request_id, raw)
    return outcome, None, record


def _record(
    compiled: CompiledAction, conn: ResolvedConnection, record_id: str, request_id: str,
    status: str, http_status: int | None, latency_ms: float, attempts: int,
    error_class: str | None, error_message: str | None, started_wall: float,
    rate_limit_wait: float,
) -> CallRecord:
    # observability: calls by status (ok or the error code), latency, retries (~1.5 µs)
    observe_call(compiled.connector.name, compiled.qualified, error_class or status,
                 latency_ms, attempts)
    return CallRecord(
        record_id, request_id, compiled.qualified, compiled.connector.name, conn.record.name,
        status, http_status, latency_ms, attempts, error_class,
        error_message[:1000] if error_message else None,
        datetime.fromtimestamp(started_wall, UTC),
        rate_limit_wait * 1000,
    )


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


def _render_body(value: Any, arguments: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return compile_template(value).render(arguments)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            rendered = _render_body(v, arguments)
            if rendered is not MISSING:
                out[k] = rendered
        return out
    if isinstance(value, list):
        return [r for r in (_render_body(v, arguments) for v in value) if r is not MISSING]
    return value


#: characters that would end a header line (or that HTTP forbids in one)
_BREAKS_HEADER = re.compile(r"[\r\n\0]")

#: what quote(..., safe="") leaves as it is: most ids, which then skip its ~0.5 µs
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch


def _encode_path_segment(text: str) -> str:
    # Every reserved character is encoded: an id like "a/../b" must stay one path segment.
    if (text.isalnum() and text.isascii()) or _UNRESERVED(text) is not None:
        return text
    return quote(text, safe="")


def _credentials(auth: AuthParts | None) -> list[str]:
    """The values an auth scheme sends, and the token of each ``Scheme token`` value."""
    if auth is None:
        return []
    out = [*auth.headers.values(), *auth.query.values(), *auth.cookies.values()]
    out.extend(v.strip().split(" ", 1)[1] for v in auth.headers.values()
               if " " in v.strip())
    return out


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


def _signals_expiry(auth: OAuth2Auth, status: int, body: Any) -> bool:
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


def _parse_body(raw: RawResponse, context: CallContext, redact: Redactor) -> Any:
    if not raw.body:
        return None
    ctype = raw.headers.get("Content-Type", "")
    if "json" in ctype or (not ctype and raw.body[:1] in (b"{", b"[")):
        try:
            return orjson.loads(raw.body)
        except orjson.JSONDecodeError as exc:
            raise ResponseMappingError(
                f"the upstream declared JSON but sent something else: "
                f"{excerpt(raw.body, redact, 120)!r} ({exc})",
                context=context,
            ) from None
    return raw.body.decode("utf-8", errors="replace")


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


def _json_path(parts: Iterable[str | int]) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{orjson.dumps(part).decode()}]"
    return out


def _problem(error: jsonschema_rs.ValidationError) -> ValidationProblem:
    path = list(error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        # Point at the missing field rather than at its parent object.
        return ValidationProblem(_json_path([*path, str(kind.property)]),
                                 "is required but missing")
    message = error.message
    if len(message) > 200:
        message = message[:197] + "..."
    return ValidationProblem(_json_path(path), message)
