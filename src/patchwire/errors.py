"""Patchwire's exception tree.

Every error Patchwire raises is a :class:`PatchwireError`. Third-party exceptions are
wrapped at the boundary (``raise ... from exc``) so callers only ever catch these::

    PatchwireError
    ├── ConfigError                  settings, key files, unusable environment
    │   ├── InvalidSubscription      an outbound webhook subscription is unusable
    │   └── RecordingError           a recorded-responses file (patchwire.testing) is
    │                                unusable: says which file and where
    ├── SpecError                    a connector or flow document is invalid;
    │                                carries every SpecProblem with file, line and field path
    ├── OpenAPIImportError           an OpenAPI document cannot be turned into a connector
    ├── LookupFailed                 a named thing does not exist
    │   ├── UnknownConnector
    │   ├── UnknownAction
    │   ├── UnknownConnection
    │   │   └── NotConnected         an end user has no connection of that connector
    │   ├── UnknownTool
    │   ├── UnknownApproval
    │   ├── UnknownFlow
    │   ├── UnknownRun
    │   ├── UnknownSync
    │   ├── UnknownRecord
    │   ├── UnknownWebhookSource
    │   ├── UnknownInboxEvent
    │   ├── UnknownSubscription
    │   ├── UnknownDelivery
    │   ├── UnknownApiKey
    │   ├── UnknownEndUserToken
    │   ├── UnknownConnectSession    no such connect link (or not this end user's)
    │   └── UnknownOAuthApp          no OAuth app (client id/secret) for that connector
    ├── ConnectSessionClosed         a connect link was used or has expired (HTTP 410)
    ├── ApprovalStateError           an approval was already decided (or used)
    ├── FlowInputError               a run's input does not match its flow's input schema
    ├── RunStateError                the run cannot do that now (cancel a finished run...)
    ├── EngineUnavailable            Temporal cannot be reached or did not take a run
    ├── ConnectionExists             a connection with that name already exists
    ├── ConnectorExists              the deployment already has a connector file of that
    │                                name (`connector add` from the catalog)
    ├── WebhookSourceExists          a webhook source with that name already exists
    ├── ExpressionError              a JSONata expression does not compile or failed
    │                                (carries JSONata's error code and position)
    ├── ChatError                    the model provider of `patchwire chat` failed
    ├── VaultError                   a secret cannot be encrypted or decrypted
    ├── WebhookRejected              an inbound webhook failed verification (carries a
    │                                short reason code and the HTTP status to answer)
    ├── StoreError                   the database failed or is unreachable
    ├── OAuthError                   an OAuth2 token request failed (carries the RFC 6749
    │   │                            error code, e.g. invalid_grant, never a token)
    │   └── ReauthRequired           the connection's grant is gone: a person must
    │                                run `patchwire connection connect` again
    └── CallError                    one call of an action failed (carries CallContext)
        ├── InputValidationError     arguments violate the action's input schema
        ├── RequestRenderError       the request could not be built (missing setting...)
        ├── UpstreamResponseError    the upstream answered with an error status
        │   ├── AuthError            401/403: credentials missing, wrong or lacking scope
        │   ├── NotFoundError        404
        │   ├── ConflictError        409
        │   ├── UpstreamValidationError  400/422: the upstream rejected the request
        │   ├── RateLimitedError     429 (retry_after in seconds when known)
        │   └── UpstreamError        any other error status (5xx...)
        ├── CallTimeoutError         no complete answer within the timeout
        ├── TransportError           connection refused, reset, DNS failure
        ├── BlockedDestinationError  the SSRF guard refused the address (loopback, private,
        │                            metadata...): never sent, never retried
        ├── CircuitOpenError         the connector's circuit breaker is open: failed fast,
        │                            without a request (probe_at: when it tries again)
        ├── ResponseMappingError     the response could not be parsed or mapped
        ├── PaginationError          a listing could not be paged (loop, foreign next
        │                            URL, bound reached...)
        ├── CustomCodeError          a custom code action or step (`code:`) failed or
        │                            cannot load: the exception's type and a redacted
        │                            message, never a traceback
        └── UnrecordedRequest        a test replaying recorded responses sent a request
                                     none of them answers (names the request)

Messages never contain secret values: errors are built from names, statuses and
redacted body excerpts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ApprovalStateError",
    "AuthError",
    "BlockedDestinationError",
    "CallContext",
    "CallError",
    "CallTimeoutError",
    "ChatError",
    "CircuitOpenError",
    "ConfigError",
    "ConflictError",
    "ConnectSessionClosed",
    "ConnectionExists",
    "ConnectorExists",
    "CustomCodeError",
    "EngineUnavailable",
    "ExpressionError",
    "FlowInputError",
    "InputValidationError",
    "InvalidSubscription",
    "LookupFailed",
    "NotConnected",
    "NotFoundError",
    "OAuthError",
    "OpenAPIImportError",
    "PaginationError",
    "PatchwireError",
    "RateLimitedError",
    "ReauthRequired",
    "RecordingError",
    "RequestRenderError",
    "ResponseMappingError",
    "RunStateError",
    "SpecError",
    "SpecProblem",
    "StoreError",
    "TransportError",
    "UnknownAction",
    "UnknownApiKey",
    "UnknownApproval",
    "UnknownConnectSession",
    "UnknownConnection",
    "UnknownConnector",
    "UnknownDelivery",
    "UnknownEndUserToken",
    "UnknownFlow",
    "UnknownInboxEvent",
    "UnknownOAuthApp",
    "UnknownRecord",
    "UnknownRun",
    "UnknownSubscription",
    "UnknownSync",
    "UnknownTool",
    "UnknownWebhookSource",
    "UnrecordedRequest",
    "UpstreamError",
    "UpstreamResponseError",
    "UpstreamValidationError",
    "ValidationProblem",
    "VaultError",
    "WebhookRejected",
    "WebhookSourceExists",
]


class PatchwireError(Exception):
    """Base class of every error Patchwire raises."""

    #: short machine-readable name, stable across versions (used in call records and APIs)
    code: str = "error"

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": str(self)}


class ConfigError(PatchwireError):
    code = "config_error"


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a document: where it is and what is wrong."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        at = f" at {self.path}" if self.path else ""
        return f"{where}{at}: {self.message}"


class SpecError(PatchwireError):
    """A document is invalid. ``problems`` lists every problem found, not just the first."""

    code = "spec_error"

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        n = len(problems)
        head = f"{n} problem{'s' if n != 1 else ''} found"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "message": str(self),
            "problems": [
                {"file": p.file, "line": p.line, "path": p.path, "message": p.message,
                 "where": str(p)}
                for p in self.problems
            ],
        }


class OpenAPIImportError(PatchwireError):
    code = "openapi_import_error"


class LookupFailed(PatchwireError):
    code = "not_found"


class UnknownConnector(LookupFailed):
    code = "unknown_connector"


class UnknownAction(LookupFailed):
    code = "unknown_action"


class UnknownConnection(LookupFailed):
    code = "unknown_connection"


class NotConnected(UnknownConnection):
    """An end user has no connection of a connector yet: they must connect an account
    (a tool answers with a connect link for them)."""

    code = "not_connected"

    def __init__(self, message: str, *, connector: str, end_user: str) -> None:
        super().__init__(message)
        self.connector = connector
        self.end_user = end_user

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "connector": self.connector}


class UnknownTool(LookupFailed):
    code = "unknown_tool"


class UnknownApproval(LookupFailed):
    code = "unknown_approval"


class UnknownFlow(LookupFailed):
    code = "unknown_flow"


class UnknownRun(LookupFailed):
    code = "unknown_run"


class ApprovalStateError(PatchwireError):
    code = "approval_already_decided"


class FlowInputError(PatchwireError):
    """The input of a run does not match the flow's input schema; ``problems`` say where."""

    code = "invalid_flow_input"

    def __init__(self, message: str, problems: list[ValidationProblem]) -> None:
        super().__init__(message)
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["problems"] = [{"path": p.path, "message": p.message} for p in self.problems]
        return d


class RunStateError(PatchwireError):
    code = "run_state"


class EngineUnavailable(PatchwireError):
    code = "engine_unavailable"


class ConnectionExists(PatchwireError):
    code = "connection_exists"


class ConnectorExists(PatchwireError):
    code = "connector_exists"


class VaultError(PatchwireError):
    code = "vault_error"


class StoreError(PatchwireError):
    code = "store_error"


class WebhookRejected(PatchwireError):
    """An inbound webhook failed verification.

    ``reason`` is a short machine code (``missing_signature``, ``malformed_signature``,
    ``bad_signature``, ``stale_timestamp``, ``missing_timestamp``...) and ``status`` the HTTP
    status to answer with. Built from header names and codes only: neither secrets nor the
    expected signature ever reach the message, so it is safe to record and return.
    """

    code = "webhook_rejected"

    def __init__(self, reason: str, status: int = 401, message: str | None = None) -> None:
        self.reason = reason
        self.status = status
        self.message = message or reason.replace("_", " ")
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "reason": self.reason, "message": self.message}


class OAuthError(PatchwireError):
    """A token request failed. ``error`` is the RFC 6749 §5.2 code (``invalid_grant``...),
    or ``http_<status>``/``invalid_response`` when the server did not send one.

    Built from codes, statuses and redacted descriptions only: tokens, codes, verifiers and
    client secrets never reach the message.
    """

    code = "oauth_error"

    def __init__(
        self, message: str, *, error: str = "oauth_error", status: int | None = None,
        connection: str | None = None,
    ) -> None:
        self.error = error
        self.status = status
        self.connection = connection
        self.message = message
        super().__init__(f"{message} [connection={connection}]" if connection else message)

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "oauth_error": self.error,
                "status": self.status, "connection": self.connection}


class ReauthRequired(OAuthError):
    """The grant was refused (revoked, expired refresh token): tokens cannot be renewed
    without a person authorising again; the connection is marked ``needs_reauth``."""

    code = "reauth_required"


@dataclass
class CallContext:
    """Where a call error happened. Never holds credentials or arguments."""

    action: str | None = None
    connection: str | None = None
    request_id: str | None = None
    run_id: str | None = None
    method: str | None = None
    url: str | None = None  # with query values of secret parameters redacted

    @property
    def connector(self) -> str | None:
        return self.action.split(".", 1)[0] if self.action else None


class CallError(PatchwireError):
    """One call of an action failed. ``context`` says which action, connection and request."""

    code = "call_error"

    def __init__(self, message: str, *, context: CallContext | None = None) -> None:
        self.context = context or CallContext()
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        ctx = self.context
        parts = [p for p in (ctx.action, f"connection={ctx.connection}" if ctx.connection else None,
                             f"request_id={ctx.request_id}" if ctx.request_id else None) if p]
        return f"{self.message} [{', '.join(parts)}]" if parts else self.message

    def to_dict(self) -> dict[str, Any]:
        ctx = self.context
        return {
            "error": self.code,
            "message": self.message,
            "action": ctx.action,
            "connector": ctx.connector,
            "connection": ctx.connection,
            "request_id": ctx.request_id,
        }


@dataclass(frozen=True)
class ValidationProblem:
    """One input violation: JSON path of the offending value and what was expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InputValidationError(CallError):
    code = "invalid_input"

    def __init__(
        self, problems: list[ValidationProblem], *, context: CallContext | None = None
    ) -> None:
        self.problems = problems
        body = "; ".join(str(p) for p in problems)
        super().__init__(f"invalid input: {body}", context=context)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["problems"] = [{"path": p.path, "message": p.message} for p in self.problems]
        return d


class RequestRenderError(CallError):
    code = "request_render_error"


class UpstreamResponseError(CallError):
    """The upstream answered with an error status. ``body_excerpt`` is redacted and short.

    ``token_expired`` is true when the answer matches the OAuth2 connector's expiry signal
    (``refresh_on_status`` / ``refresh_on_body``): the call path renews the token once.
    """

    code = "upstream_response_error"
    token_expired: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body_excerpt: str = "",
        retry_after: float | None = None,
        context: CallContext | None = None,
    ) -> None:
        self.status = status
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after
        super().__init__(message, context=context)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["status"] = self.status
        d["body_excerpt"] = self.body_excerpt
        if self.retry_after is not None:
            d["retry_after"] = self.retry_after
        return d


class AuthError(UpstreamResponseError):
    code = "auth_error"


class NotFoundError(UpstreamResponseError):
    code = "not_found"


class ConflictError(UpstreamResponseError):
    code = "conflict"


class UpstreamValidationError(UpstreamResponseError):
    code = "upstream_validation_error"


class RateLimitedError(UpstreamResponseError):
    code = "rate_limited"


class UpstreamError(UpstreamResponseError):
    code = "upstream_error"


class CallTimeoutError(CallError):
    code = "timeout"


class TransportError(CallError):
    code = "connection_error"


class BlockedDestinationError(CallError):
    """The SSRF guard refused to connect: ``host`` (as in the URL or a redirect) resolved to
    ``address``, which is ``reason`` (loopback, private, cloud metadata...). Not retried."""

    code = "blocked_destination"

    def __init__(
        self, message: str, *, host: str, address: str | None, reason: str,
        context: CallContext | None = None,
    ) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        super().__init__(message, context=context)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["host"] = self.host
        d["address"] = self.address
        return d


class CircuitOpenError(CallError):
    """The connector's circuit breaker is open; no request was sent.

    ``probe_at`` is the wall-clock time (epoch seconds) of the next probe request and
    ``retry_after`` the seconds until then.
    """

    code = "circuit_open"

    def __init__(
        self, message: str, *, probe_at: float, retry_after: float,
        context: CallContext | None = None,
    ) -> None:
        self.probe_at = probe_at
        self.retry_after = retry_after
        super().__init__(message, context=context)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["probe_at"] = self.probe_at
        d["retry_after"] = self.retry_after
        return d


class ResponseMappingError(CallError):
    code = "response_mapping_error"


#: error names usable in a connector's error mapping -> class
ERROR_KINDS: dict[str, type[UpstreamResponseError]] = {
    "auth": AuthError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "validation": UpstreamValidationError,
    "rate_limited": RateLimitedError,
    "upstream": UpstreamError,
}


def error_kind_for_status(status: int) -> type[UpstreamResponseError]:
    """Default classification of an error status."""
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status in (400, 422):
        return UpstreamValidationError
    if status == 429:
        return RateLimitedError
    return UpstreamError


# -- errors of the feature packages (each re-exported by its package's face) ---------------

class ExpressionError(PatchwireError):
    """A JSONata expression does not compile or failed while evaluating.

    ``jsonata_code`` is JSONata's error code (``S0201``, ``T2001``, ``D1001``...; ``D1000``
    where JSONata has none, see docs/flows.md) and ``position`` the character offset in
    the expression it points at, when known.
    """

    code = "expression_error"

    def __init__(self, message: str, *, jsonata_code: str | None = None,
                 position: int | None = None) -> None:
        super().__init__(message)
        self.jsonata_code = jsonata_code
        self.position = position

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.jsonata_code is not None:
            out["jsonata_code"] = self.jsonata_code
            out["position"] = self.position
        return out


class PaginationError(CallError):
    """A listing could not be paged: no pagination declared, a loop, a foreign next URL,
    an unreadable page, or the default page bound reached."""

    code = "pagination_error"


class ChatError(PatchwireError):
    """The model's provider failed: an HTTP error, a refused connection, a timeout, or a
    response that is not what the API promises. The message never holds the API key."""

    code = "chat_error"


class UnknownSync(LookupFailed):
    code = "unknown_sync"


class UnknownRecord(LookupFailed):
    code = "unknown_record"


class UnknownSubscription(LookupFailed):
    code = "unknown_subscription"


class UnknownDelivery(LookupFailed):
    code = "unknown_delivery"


class UnknownWebhookSource(LookupFailed):
    code = "unknown_webhook_source"


class UnknownInboxEvent(LookupFailed):
    code = "unknown_inbox_event"


class UnknownApiKey(LookupFailed):
    code = "unknown_api_key"


class UnknownEndUserToken(LookupFailed):
    code = "unknown_end_user_token"


class UnknownConnectSession(LookupFailed):
    """No connect link with that token, or not one this end user may see."""

    code = "unknown_connect_session"


class UnknownOAuthApp(LookupFailed):
    """The deployment has no OAuth app (client id and secret) for a connector: set one
    with ``patchwire oauth-apps set CONNECTOR`` or ``PUT /api/v1/oauth-apps/{connector}``."""

    code = "unknown_oauth_app"


class ConnectSessionClosed(PatchwireError):
    """A connect link was already used, or has expired: ask for a new one (HTTP 410)."""

    code = "connect_session_closed"


class InvalidSubscription(ConfigError):
    """A subscription's URL, event-type filter or secret is not acceptable (HTTP 400)."""

    code = "invalid_subscription"


class WebhookSourceExists(PatchwireError):
    code = "webhook_source_exists"


class RecordingError(ConfigError):
    """A file of recorded responses (``patchwire.testing``) cannot be read or written: the
    message names the file and, for a malformed one, where in it."""

    code = "recording_error"


class UnrecordedRequest(CallError):
    """A test replaying recorded responses sent a request that no recording answers (or
    whose recordings were all used). ``method`` and ``url`` name it, secrets redacted."""

    code = "unrecorded_request"

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None,
                 context: CallContext | None = None) -> None:
        self.method = method
        self.url = url
        super().__init__(message, context=context)


class CustomCodeError(CallError):
    """Custom code (``code: package.module:function``) raised an exception that is not a
    CallError, returned what is not JSON, or cannot be loaded. ``exception_type`` names the
    exception's class (None when the code could not run); the message is redacted and
    short, and never holds a traceback."""

    code = "custom_code_error"

    def __init__(self, message: str, *, exception_type: str | None = None,
                 context: CallContext | None = None) -> None:
        self.exception_type = exception_type
        super().__init__(message, context=context)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["exception_type"] = self.exception_type
        return d
