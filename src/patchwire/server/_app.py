"""FastAPI application over one ``Patchwire`` instance.

Errors use one JSON shape, RFC 9457 problem details (``application/problem+json``), with
Patchwire's error code as ``type`` suffix and the call context as extension members.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from patchwire import Patchwire
from patchwire.definitions import LiveDefinitions
from patchwire.errors import (
    ApprovalStateError,
    CallError,
    ConfigError,
    ConnectionExists,
    EngineUnavailable,
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
)
from patchwire.expressions import ExpressionError
from patchwire.flows import FlowEngine, FlowRegistry, create_engine
from patchwire.observability import CONTENT_TYPE as METRICS_CONTENT_TYPE
from patchwire.observability import RequestContextMiddleware, exposition, observe_breakers
from patchwire.server._auth import (
    AccessPolicy,
    ApiKeyMiddleware,
    FailedAuthLimiter,
    KeyRing,
    SiteGuard,
    auth_routes,
    is_loopback,
)
from patchwire.server._definitions_api import definitions_router
from patchwire.server._deliveries_api import deliveries_router
from patchwire.server._flows_api import flows_router
from patchwire.server._keys_api import keys_router
from patchwire.server._problems_doc import declare_problems
from patchwire.server._records_api import records_router
from patchwire.server._tools_api import tools_router
from patchwire.server._webhooks_api import WebhookReceiver, webhooks_router
from patchwire.sync import SyncEngine, SyncRegistry
from patchwire.tools import ChatError
from patchwire.webhooks import (
    DeliveryWorker,
    Inbox,
    SourceCache,
    WebhookOutbox,
    WebhookSourceExists,
    WebhookSources,
)

__all__ = ["create_app", "is_loopback"]

PROBLEM = "application/problem+json"
#: a caller's request id is passed upstream only if it is plainly an identifier
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class CallRequest(BaseModel):
    connection: str | None = Field(None, description="connection name (default: the only one)")
    input: dict[str, Any] = Field(default_factory=dict, description="the action's arguments")


class CallResponse(BaseModel):
    result: Any
    status: int
    attempts: int
    latency_ms: float
    request_id: str


class ConnectionTestResponse(BaseModel):
    ok: bool = Field(description="the credentials were accepted (a refusal is a problem)")
    action: str = Field(description="the connector's test call, e.g. shop.list_orders")
    status: int = Field(description="the upstream's HTTP status")
    elapsed_ms: float


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
    if isinstance(exc, ConnectionExists | WebhookSourceExists | ApprovalStateError
                  | RunStateError):
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


_HOOK_PATH = re.compile(r"^/hooks/([^/]+)/?$")


class HooksFirst:
    """ASGI middleware: ``/hooks/{source}`` straight to the webhook receiver."""

    def __init__(self, app: ASGIApp, receiver: ASGIApp) -> None:
        self.app = app
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = _HOOK_PATH.match(scope["path"])
            if match is not None and scope["method"] in ("GET", "POST"):
                scope["path_params"] = {"source": match.group(1)}
                await self.receiver(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    pw: Patchwire, *, manage_lifecycle: bool = True, background_refresh: float | None = None,
    engine: bool | FlowEngine = False, flows: FlowRegistry | None = None,
    inbox: Inbox | None = None,
    syncs: SyncRegistry | None = None,
    access: AccessPolicy | None = None,
) -> FastAPI:
    """The API over ``pw``. ``background_refresh``: renew OAuth2 tokens due for renewal
    every that many seconds while the app runs (``patchwire serve`` turns it on).

    ``engine``: ``True`` runs flows in this process while the app runs — queued and due
    runs, schedules — like ``patchwire worker`` (``patchwire serve`` turns it on); a
    FlowEngine is used (started and stopped) as given; ``False`` only records runs started
    through the API as queued, for a worker (``wait`` then waits for that worker).
    ``flows``: default, ``settings.flow_paths`` (the shipped examples only on request).
    ``inbox``: the webhook inbox (``app.state.inbox``; add event handlers to it) — by
    default one starting flows on this app's engine; its events are processed where this
    app runs flows, or always when one is given.
    ``syncs``: default, ``settings.sync_paths``; polled on schedule where this app runs
    flows, their records served at ``/api/v1/records`` and searched by records tools.
    ``access``: how API keys are checked (``server/_auth.py``); by default only once the
    store holds a key (``patchwire serve`` on a non-loopback address requires them)."""
    # --- flows (src/patchwire/server/_flows_api.py) ---
    registry = flows if flows is not None else FlowRegistry.load(pw.settings.flow_paths)
    # the settings choose the engine: embedded, or Temporal (runs go to its workers)
    flow_engine = engine if isinstance(engine, FlowEngine) else create_engine(
        pw, registry.as_mapping(), schedules=bool(engine))
    # not started, an engine runs nothing: the runs it starts are queued for a worker
    run_flows = engine is not False
    # a Temporal engine starts runs on Temporal even where this app runs no background work
    start_engine = run_flows or flow_engine.remote
    # --- end flows ---
    # --- sync (src/patchwire/server/_records_api.py) ---
    sync_registry = syncs if syncs is not None else SyncRegistry.load(pw.settings.sync_paths)
    sync_engine = SyncEngine(pw, sync_registry)
    # --- end sync ---
    # --- MCP (Streamable HTTP at /mcp; src/patchwire/tools/_mcp.py) ---
    from patchwire.tools import McpHttpEndpoint, ToolInvoker

    # flows with a tool trigger are tools where this app runs flows
    tool_invoker = ToolInvoker(pw, engine=flow_engine if run_flows else None,
                               syncs=sync_registry)  # sync: records tools
    mcp_endpoint = McpHttpEndpoint(tool_invoker)
    # --- end MCP ---

    # --- inbound webhooks (src/patchwire/server/_webhooks_api.py) ---
    webhook_inbox = inbox if inbox is not None else Inbox(pw, flow_engine)
    process_inbox = run_flows or inbox is not None
    webhook_sources = WebhookSources(pw)
    source_cache = SourceCache(webhook_sources)
    # --- end inbound webhooks ---
    webhook_inbox.add_handler(sync_engine.handle_webhook_event)  # sync: records in real time

    # outbound webhooks (src/patchwire/webhooks/_deliveries.py): the worker needs the store
    delivery_worker: list[DeliveryWorker] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await pw.open()
        if background_refresh is not None:
            pw.start_background_refresh(background_refresh)
        try:
            if start_engine:
                await flow_engine.start()  # flows: released again by stop() below
            if run_flows:  # outbound webhooks: dispatch events, send deliveries
                delivery_worker.append(await DeliveryWorker(WebhookOutbox.of(pw)).start())
            if process_inbox:  # inbound webhooks: flows and handlers for inbox events
                await webhook_inbox.start()
            if run_flows:  # sync: scheduled polls and reconciliations
                await sync_engine.start()
            async with mcp_endpoint.run():  # MCP: the Streamable HTTP session manager
                yield
        finally:
            await sync_engine.stop()  # sync: a poll cut short resumes from its saved cursor
            # inbound webhooks: unfinished events are released; queued rows are committed
            await webhook_inbox.stop()
            for worker in delivery_worker:  # outbound webhooks: unsent ones go later
                await worker.stop()
            delivery_worker.clear()
            if start_engine:  # flows: runs in flight resume elsewhere or at the next start
                await flow_engine.stop()
            if background_refresh is not None:
                await pw.stop_background_refresh()
            if manage_lifecycle:
                await pw.close()

    app = FastAPI(title="Patchwire", version="0.1.0", lifespan=lifespan,
                  docs_url="/api/docs", openapi_url="/api/v1/openapi.json")
    declare_problems(app)
    # --- access control and observability (server/_auth.py, observability/) ---
    policy = access or AccessPolicy()
    key_ring = KeyRing(lambda: pw.store, ttl=policy.cache_ttl)
    auth_limiter = FailedAuthLimiter(policy.max_failures, policy.failure_window)
    # added last = runs first: request ids wrap authentication, so refusals are logged too
    app.add_middleware(ApiKeyMiddleware, store=lambda: pw.store, policy=policy,
                       ring=key_ring, limiter=auth_limiter)
    # ahead of keys: what a hostile page sends (rebound Host, cross-site) is refused for
    # every route, /mcp included, with or without keys
    app.add_middleware(SiteGuard, hosts=(pw.settings.host, *pw.settings.allowed_hosts))
    app.add_middleware(RequestContextMiddleware)
    app.router.routes.extend(auth_routes(key_ring, auth_limiter))
    app.state.key_ring = key_ring

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        # breaker states are sampled now rather than pushed on every transition
        observe_breakers(pw.breaker_state(spec.name) for spec in pw.connectors)
        return Response(exposition(), media_type=METRICS_CONTENT_TYPE)
    # --- end access control and observability ---
    # MCP: an ASGI endpoint (every method: POST, GET for the event stream, DELETE)
    app.router.routes.append(Route("/mcp", endpoint=mcp_endpoint))
    # inbound webhooks: a plain ASGI endpoint that reads the raw body itself
    receiver = WebhookReceiver(source_cache, webhook_inbox)
    app.router.routes.append(Route("/hooks/{source}", methods=["GET", "POST"],
                                   endpoint=receiver))
    # Webhooks carry their own verification (no API keys, no sessions): they are answered
    # ahead of the API's middleware, which cost as much as the ingest itself (measured:
    # ~3,700 vs ~5,300 events/s); their counts are in the webhook metrics instead.
    app.add_middleware(HooksFirst, receiver=receiver)
    app.state.inbox = webhook_inbox

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

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/connectors")
    async def list_connectors() -> list[dict[str, Any]]:
        return [{"name": s.name, "title": s.title, "description": s.description,
                 "auth": s.auth.type, "actions": sorted(s.actions)} for s in pw.connectors]

    @app.get("/api/v1/connectors/{name}")
    async def get_connector(name: str) -> dict[str, Any]:
        return pw.connectors.get(name).model_dump(by_alias=True, mode="json",
                                                   exclude_defaults=True)

    @app.get("/api/v1/connections")
    async def list_connections(connector: str | None = None,
                               owner: str | None = None) -> list[dict[str, Any]]:
        return [i.to_dict() for i in await pw.list_connections(connector, owner)]

    @app.get("/api/v1/connections/{name}")
    async def get_connection(name: str) -> dict[str, Any]:
        return (await pw.get_connection(name)).to_dict()

    @app.post("/api/v1/connections/{name}/test", response_model=ConnectionTestResponse)
    async def test_connection(name: str) -> ConnectionTestResponse:
        # one cheap call proving the credentials; a refusal is the call's problem (424 with
        # the upstream's status and a redacted excerpt), never the credentials
        tested = await pw.test_connection(name)
        return ConnectionTestResponse(ok=True, action=tested.action, status=tested.status,
                                      elapsed_ms=round(tested.latency_ms, 1))

    @app.post("/api/v1/actions/{action}/call", response_model=CallResponse)
    async def call_action(action: str, body: CallRequest, request: Request) -> CallResponse:
        given = request.headers.get("X-Request-Id", "")
        outcome = await pw.execute(action, body.input, connection=body.connection,
                                   request_id=given if _REQUEST_ID.match(given) else None)
        return CallResponse(result=outcome.result, status=outcome.status,
                            attempts=outcome.attempts, latency_ms=outcome.latency_ms,
                            request_id=outcome.request_id)

    @app.get("/api/v1/calls")
    async def list_calls(action: str | None = None, connection: str | None = None,
                         limit: int = 100) -> list[dict[str, Any]]:
        records = await pw.recent_calls(action=action, connection=connection,
                                        limit=max(1, min(limit, 1000)))
        return [r.to_dict() for r in records]

    app.include_router(tools_router(pw, tool_invoker))
    app.include_router(flows_router(registry, flow_engine))
    app.include_router(webhooks_router(webhook_sources, source_cache, webhook_inbox))
    app.include_router(deliveries_router(pw))  # outbound webhooks
    app.include_router(records_router(sync_engine))  # sync: /api/v1/syncs, /api/v1/records
    app.include_router(keys_router(lambda: pw.store, key_ring))  # access: /api/v1/keys
    # definitions in force, reloaded by the API and on SIGHUP (`serve`: app.state)
    app.state.definitions = LiveDefinitions(pw, registry, engine=flow_engine, syncs=sync_engine,
                                            tools=tool_invoker,
                                            sync_examples=sync_registry.builtins)
    app.include_router(definitions_router(app.state.definitions))
    # --- dashboard (src/patchwire/dashboard): HTML pages at / and their /assets ---
    from patchwire.dashboard import mount_dashboard

    mount_dashboard(app, pw, engine=flow_engine, invoker=tool_invoker)
    # --- end dashboard ---
    return app
