"""The call executor: :class:`CallPath`, the one way anything reaches an upstream.

``execute(request)`` compiles the action (once per definition), names and resolves the
connection, validates the arguments (unless the request was validated already), renders
the request, sends it through the HTTP core (limits, breaker, retries), maps the answer or
raises its typed error, and hands a call record to the call log. An OAuth2 token the
upstream refuses is renewed once and the call made again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from patchwire.calls._action import CompiledAction
from patchwire.calls._bodies import KeptBlob
from patchwire.calls._code import CodeRunner
from patchwire.calls._connection import ConnectionResolver, ResolvedConnection, check_end_user
from patchwire.calls._pagination import paginate
from patchwire.calls._request import CallOutcome, CallRequest, ValidatedCall
from patchwire.connectors import ConnectorRegistry
from patchwire.errors import (
    CallContext,
    CallError,
    PatchwireError,
    RequestRenderError,
    ResponseMappingError,
    UpstreamResponseError,
)
from patchwire.http import HttpCore, PreparedRequest, RetryDecision
from patchwire.ids import new_id
from patchwire.observability import observe_call
from patchwire.store.blobs import NewBlob
from patchwire.store.records import CallRecord

__all__ = ["CallPath"]


class CallPath:
    """Calls actions. ``record`` receives every call's record (the call log's writer);
    ``connectors`` is read at each compile, so a registry replaced in place is seen once
    :meth:`reload` has dropped what was compiled from the old one. ``on_refused`` is told
    the name of a connection whose upstream refused even the token just renewed for it
    (a person must authorise it again). ``keep_blob`` stores a binary answer's bytes (the
    result holds their metadata and reference); without it (the connect flow's test call,
    whose result nobody reads) they are not kept."""

    def __init__(
        self, connectors: ConnectorRegistry, connections: ConnectionResolver,
        http: HttpCore, record: Callable[[CallRecord], None], *,
        on_refused: Callable[[str], None] | None = None,
        keep_blob: Callable[[NewBlob], Awaitable[object]] | None = None,
        code_paths: Sequence[Path] = (),
    ) -> None:
        self._connectors = connectors
        self._connections = connections
        self._http = http
        self._record = record
        self._on_refused = on_refused
        self._keep_blob = keep_blob
        self._compiled: dict[str, CompiledAction] = {}
        #: custom code (``code:`` actions and flow steps), only from ``code_paths``
        self._code = CodeRunner(code_paths, connections, http, record)

    # -- definitions and connections ------------------------------------------------------

    def action(self, qualified: str) -> CompiledAction:
        """Action ``qualified`` (``"shop.get_order"``), compiled once; UnknownConnector or
        UnknownAction when there is no such action."""
        # a flow's code step is compiled (and kept, boundedly) by calls/_code.py
        compiled = self._compiled.get(qualified) or self._code.step_action(
            qualified, self._connectors)
        if compiled is None:
            spec, action = self._connectors.resolve(qualified)
            compiled = CompiledAction(spec, qualified.split(".", 1)[1], action)
            self._compiled[qualified] = compiled
        return compiled

    def reload(self) -> None:
        """Connector definitions changed: compile and resolve everything again (a call in
        flight ends with the definition it started with)."""
        self._compiled.clear()
        self._connections.forget()
        self._code.reload()

    def forget(self, connection: str | None = None) -> None:
        """Connection ``connection`` (None: any) changed: resolve it again on next use."""
        self._connections.forget(connection)

    async def connection_name(self, action: CompiledAction, connection: str | None,
                              end_user: str | None = None) -> str:
        """``connection``, or when None the action's connector's only connection (of
        ``end_user``'s: their default one)."""
        return connection or await self._connections.default_for(action.connector.name,
                                                                  end_user)

    async def resolve_connection(self, action: str, connection: str | None = None,
                                 end_user: str | None = None) -> ResolvedConnection:
        """The connection a call of ``action`` would use, resolved (it holds decrypted
        secrets: never log or serialise it)."""
        compiled = self.action(action)
        name = await self.connection_name(compiled, connection, end_user)
        resolved = await self._connections.resolve(name, compiled.connector.name)
        check_end_user(resolved, end_user)
        return resolved

    # -- calls ---------------------------------------------------------------------------

    def validate(self, request: CallRequest) -> ValidatedCall:
        """Check the request's arguments against its action's input schema now (raises
        InputValidationError, not written to the call log: nothing was called), so that
        :meth:`execute` sends it without checking them again."""
        compiled = self._compiled.get(request.action) or self.action(request.action)
        compiled.validate(request.arguments, CallContext(
            action=compiled.qualified, connection=request.connection,
            request_id=request.request_id, run_id=request.run_id))
        return ValidatedCall(request, compiled)

    async def execute(self, request: CallRequest | ValidatedCall) -> CallOutcome:
        """Make one call and return its result with its status, attempts and timing, or
        raise its typed CallError. Every call, failed or not, reaches the call log."""
        if isinstance(request, ValidatedCall):
            compiled, request, validated = request.action, request.request, True
        else:
            compiled = self._compiled.get(request.action) or self.action(request.action)
            validated = False
        if compiled.code is not None:  # custom code: its own client, recorded like any call
            return await self._code.run(compiled, request, validated)
        connector = compiled.connector.name
        end_user = request.end_user
        name = request.connection or await self._connections.default_for(connector, end_user)
        conn = self._connections.ready(name, connector)
        if conn is None:
            conn = await self._connections.resolve(name, connector)
        if end_user is not None and conn.record.end_user != end_user:
            check_end_user(conn, end_user)
        outcome, error, record = await self._exchange(compiled, request, conn, validated)
        self._record(record)
        if error is None:
            assert outcome is not None
            return outcome
        if (conn.access_token is not None and isinstance(error, UpstreamResponseError)
                and error.token_expired):
            # The upstream refused a token we believed valid (revoked, clock skew), as the
            # connector's refresh_on_status / refresh_on_body say: renew it once
            # (single-flight with every other caller) and try again. The arguments passed
            # validation on the first try.
            await self._connections.renew(name, conn.access_token)
            conn = await self._connections.resolve(name, connector)
            outcome, error, record = await self._exchange(compiled, request, conn, True)
            self._record(record)
            if (self._on_refused is not None and isinstance(error, UpstreamResponseError)
                    and error.token_expired):
                self._on_refused(name)  # refused again: the grant itself is gone
        if error is not None:
            raise error
        assert outcome is not None
        return outcome

    def paginate(
        self, request: CallRequest, *, max_items: int | None = None,
        max_pages: int | None = None,
    ) -> AsyncIterator[Any]:
        """Every record of a list action, one call per page, fetched as they are consumed;
        see ``Patchwire.paginate``."""
        return paginate(self, request, max_items=max_items, max_pages=max_pages)

    async def _exchange(
        self, compiled: CompiledAction, request: CallRequest, conn: ResolvedConnection,
        validated: bool,
    ) -> tuple[CallOutcome | None, CallError | None, CallRecord]:
        """One request and its answer: (outcome, error, record), one of the first two set."""
        record_id = new_id()
        # Our own request ids double as record ids; a caller's may repeat, so it gets its own.
        request_id = request.request_id or record_id
        context = CallContext(
            action=compiled.qualified, connection=conn.record.name, request_id=request_id,
            run_id=request.run_id, method=compiled.method,
        )
        arguments = request.arguments
        started_wall = time.time()
        started = time.perf_counter()
        decision = RetryDecision()
        status: int | None = None
        req: PreparedRequest | None = None
        try:
            if not validated:
                compiled.validate(arguments, context)
            if conn.auth is None:
                raise RequestRenderError(
                    f"connection {conn.record.name!r} has no value for "
                    f"{conn.missing_credential!r}, which {compiled.connector.name}'s "
                    f"{compiled.connector.auth.type} auth needs; set it with `patchwire "
                    f"connection add ... --set {conn.missing_credential}=...`",
                    context=context,
                )
            req = compiled.render(arguments, conn, context)
            if conn.tls is not None:  # mutual TLS: every protocol's request presents it
                req.tls = conn.tls
            if request.page is not None:
                request.page.apply(req, context)
            if request.idempotency_key is not None:
                _idempotency_key(req, compiled, request.idempotency_key)
            req.headers["X-Request-Id"] = request_id
            if conn.signer is not None:  # last: the signature covers the request as sent
                conn.sign(req, context)
            raw = await self._http.send(
                req, timeouts=compiled.connector.timeouts, retry=compiled.connector.retry,
                context=context, decision=decision, connector=compiled.connector,
                connection=conn.record.name, end_user=conn.record.end_user,
            )
            status = raw.status
            if compiled.adapter is not None:
                # a budget the body says is spent (GitHub's, Shopify's GraphQL cost):
                # the connection's next calls wait as after a 429
                wait = compiled.adapter.pause_after(raw)
                if wait is not None:
                    self._http.pause(compiled.connector, conn.record.name,
                                     conn.record.end_user, wait)
            if not raw.ok:
                error = compiled.error_for(raw, arguments, context, conn.redact)
                if error.retry_after is None and decision.retry_after is not None:
                    # the wait came from a reset header, not Retry-After: still say when
                    error.retry_after = decision.retry_after
                raise error
            if compiled.success_error_rules:
                failure = compiled.failure_in_success(raw, arguments, context, conn.redact)
                if failure is not None:
                    raise failure
            result = compiled.map_response(raw, arguments, context, conn.redact)
            if isinstance(result, KeptBlob):
                result = await self._keep(result, compiled, conn, context)
        except CallError as exc:
            latency = (time.perf_counter() - started) * 1000
            if req is not None:
                context.url = conn.redact(req.url)
            record = _record(compiled, conn, record_id, request_id, "error", status, latency,
                             decision.attempts, exc.code, conn.redact(exc.message),
                             started_wall, decision.rate_limit_wait)
            return None, exc, record
        latency = (time.perf_counter() - started) * 1000
        record = _record(compiled, conn, record_id, request_id, "ok", status, latency,
                         decision.attempts, None, None, started_wall, decision.rate_limit_wait)
        outcome = CallOutcome(result, status, decision.attempts, latency, request_id, raw)
        return outcome, None, record

    async def _keep(self, kept: KeptBlob, compiled: CompiledAction,
                    conn: ResolvedConnection, context: CallContext) -> Any:
        """Store a binary answer's bytes for the connection's end user; the mapped result
        (a failure to store fails the call: its result would name a blob that is not)."""
        if self._keep_blob is not None:
            meta = kept.blob.meta
            try:
                await self._keep_blob(NewBlob(
                    id=meta["blob"], connection=conn.record.name, end_user=conn.record.end_user,
                    action=compiled.qualified, content_type=meta["content_type"],
                    filename=meta["filename"], sha256=meta["sha256"],
                    content=kept.blob.content))
            except PatchwireError as exc:
                raise ResponseMappingError(f"the binary answer could not be kept: {exc}",
                                           context=context) from None
        return kept.result


def _idempotency_key(req: PreparedRequest, compiled: CompiledAction, key: str) -> None:
    """The caller's key in the connector's idempotency header of a non-idempotent action,
    unless the request already has one (its arguments may set it)."""
    header = compiled.connector.retry.idempotency_header
    if header and not compiled.idempotent and not any(
            k.lower() == header.lower() for k in req.headers):
        req.headers[header] = key


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
