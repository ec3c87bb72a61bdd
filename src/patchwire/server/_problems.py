"""Errors in the API's one shape, RFC 9457 problem details (``application/problem+json``),
with Patchwire's error code as ``type`` suffix and the call context as extension members:
the HTTP status of each error class, and the app's exception handlers."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from patchwire.errors import (
    ApprovalStateError,
    CallError,
    ChatError,
    ConfigError,
    ConnectionExists,
    ConnectorExists,
    ConnectSessionClosed,
    EngineUnavailable,
    ExpressionError,
    FlowInputError,
    InputValidationError,
    LookupFailed,
    OAuthError,
    OpenAPIImportError,
    PatchwireError,
    ReauthRequired,
    RunStateError,
    SpecError,
    StoreError,
    UpstreamResponseError,
    VaultError,
    WebhookRejected,
    WebhookSourceExists,
)

__all__ = ["PROBLEM", "install_problem_handlers", "problem"]

PROBLEM = "application/problem+json"


def _status_for(exc: PatchwireError) -> int:
    """The HTTP status of a Patchwire error. Every error class has one here: a 500 is
    left for what no error class describes (a bug)."""
    if isinstance(exc, WebhookRejected):
        return exc.status  # the verification decided it (400, 401, 413...)
    if isinstance(exc, InputValidationError | FlowInputError | SpecError | OpenAPIImportError
                  | ExpressionError):
        return 422  # a document, an expression or an input the caller can correct
    if isinstance(exc, LookupFailed):
        return 404
    if isinstance(exc, ConnectSessionClosed):
        return 410  # the link is gone for good: the end user needs a new one
    if isinstance(exc, ConnectionExists | ConnectorExists | WebhookSourceExists
                  | ApprovalStateError | RunStateError):
        return 409
    if isinstance(exc, ConfigError):
        return 400
    if isinstance(exc, ReauthRequired):
        # like an upstream's refusal: a person must authorise the connection again
        return 424
    if isinstance(exc, UpstreamResponseError):
        # The upstream's own client errors are the caller's to fix; the rest are ours.
        return 504 if exc.status == 504 else (424 if exc.status < 500 else 502)
    if isinstance(exc, CallError | OAuthError | ChatError):
        return 502  # an upstream (an API, a token endpoint, a model's provider) failed
    if isinstance(exc, StoreError | EngineUnavailable | VaultError):
        # the database, Temporal or the vault's key is unusable: the operator's to fix, and
        # the request may succeed once they have
        return 503
    return 500


def _request_problem(error: Mapping[str, Any]) -> dict[str, str]:
    """One request validation error as ``{"path", "message"}``.

    Body errors get a JSON path (``$.input``, ``$.items[0]``); a body that is not JSON at
    all gets ``$`` and the parser's complaint (FastAPI puts the character offset in the
    location, which is not a path); query, path and header errors say where they are
    (``query.limit``).
    """
    where, *rest = error.get("loc") or ("body",)
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        at = f" at character {rest[0]}" if rest else ""
        return {"path": "$", "message": f"the body is not valid JSON{at}"
                + (f": {reason}" if reason else "")}
    if where == "body":
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
    else:
        path = ".".join(str(p) for p in (where, *rest))
    return {"path": path, "message": str(error.get("msg", "invalid"))}


def problem(status: int, title: str, detail: str, code: str, **extra: Any) -> JSONResponse:
    # Extension members never replace the standard ones (RFC 9457 section 3.2).
    body = {**{k: v for k, v in extra.items() if v is not None},
            "type": f"https://patchwire.dev/errors/{code}", "title": title, "status": status,
            "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app answers, as a problem: Patchwire's errors, the framework's own
    (unknown route, wrong method) under ``/api/``, and request validation."""

    @app.exception_handler(PatchwireError)
    async def _patchwire_error(_: Request, exc: PatchwireError) -> JSONResponse:
        data = exc.to_dict()
        code = str(data.pop("error", exc.code))
        message = str(data.pop("message", str(exc)))
        if isinstance(exc, SpecError):  # each problem is in "problems", with its file:line
            message = message.split(":\n", 1)[0]
        # what the route knows that the error does not ("the definitions in force are
        # unchanged"), added with exc.add_note()
        message = "; ".join([message, *getattr(exc, "__notes__", ())])
        if "status" in data:  # the upstream's HTTP status; "status" is this response's
            data["upstream_status"] = data.pop("status")
        return problem(_status_for(exc), type(exc).__name__, message, code, **data)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # the framework's own errors (unknown route, wrong method, a body it cannot
        # parse) in the API's one shape; the dashboard keeps its pages
        if not request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        phrase = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if isinstance(exc.detail, str) else phrase
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        response = problem(exc.status_code, phrase, detail, code)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_request_problem(e) for e in exc.errors()]
        where = "request body" if all(p["path"].startswith("$") for p in problems) else "request"
        return problem(422, "Invalid request", f"the {where} is invalid",
                       "invalid_request", problems=problems)
