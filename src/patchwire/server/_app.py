"""FastAPI application over one ``Patchwire`` instance: one router module per resource,
each route declaring the scope it needs (``access/_scopes.py``); errors are RFC 9457
problem details (``server/_problems.py``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from patchwire import Patchwire
from patchwire.access import (
    PUBLIC,
    AccessPolicy,
    ApiKeyMiddleware,
    EndUserTokenRing,
    FailedAuthLimiter,
    KeyRing,
    SiteGuard,
    auth_routes,
    declare,
    is_loopback,
)
from patchwire.definitions import LiveDefinitions
from patchwire.flows import Engine, FlowRegistry, create_engine
from patchwire.observability import RequestContextMiddleware
from patchwire.ports import ConnectLinks
from patchwire.runtime import background_workers
from patchwire.server._blobs_api import blobs_router
from patchwire.server._calls_api import calls_router
from patchwire.server._catalog_api import catalog_router
from patchwire.server._connect_api import connect_router
from patchwire.server._connections_api import connections_router
from patchwire.server._connectors_api import connectors_router
from patchwire.server._definitions_api import definitions_router
from patchwire.server._deliveries_api import deliveries_router
from patchwire.server._end_users_api import end_users_router
from patchwire.server._flows_api import flows_router
from patchwire.server._keys_api import keys_router
from patchwire.server._ops_api import ops_router
from patchwire.server._problems import install_problem_handlers
from patchwire.server._problems_doc import declare_problems
from patchwire.server._records_api import records_router
from patchwire.server._tools_api import tools_router
from patchwire.server._webhooks_api import WebhookReceiver, webhooks_router
from patchwire.sync import SyncEngine, SyncRegistry
from patchwire.webhooks import Inbox, SourceCache, WebhookSources

__all__ = ["create_app", "is_loopback"]

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
    engine: bool | Engine = False, flows: FlowRegistry | None = None,
    inbox: Inbox | None = None,
    syncs: SyncRegistry | None = None,
    access: AccessPolicy | None = None,
    connect_links: ConnectLinks | None = None,
) -> FastAPI:
    """The API over ``pw``. ``background_refresh``: renew OAuth2 tokens due for renewal
    every that many seconds while the app runs (``patchwire serve`` turns it on).

    ``engine``: ``True`` runs flows in this process while the app runs — queued and due
    runs, schedules — like ``patchwire worker`` (``patchwire serve`` turns it on); a
    Engine is used (started and stopped) as given; ``False`` only records runs started
    through the API as queued, for a worker (``wait`` then waits for that worker).
    ``flows``: default, ``settings.flow_paths`` (the shipped examples only on request).
    ``inbox``: the webhook inbox (``app.state.inbox``; add event handlers to it) — by
    default one starting flows on this app's engine; its events are processed where this
    app runs flows, or always when one is given.
    ``syncs``: default, ``settings.sync_paths``; polled on schedule where this app runs
    flows, their records served at ``/api/v1/records`` and searched by records tools.
    ``access``: how API keys are checked (``patchwire.access``); by default only once the
    store holds a key (``patchwire serve`` on a non-loopback address requires them).
    ``connect_links``: what hands an end user's tool a connect link when they have not
    connected its account; by default this app's connect sessions (``/connect/{token}``)."""
    # What the app runs in the background, on pw's runtime (which starts and stops it,
    # as for `patchwire worker`); the engines get the runtime, never the facade.
    runtime = pw.runtime
    registry = flows if flows is not None else FlowRegistry.load(pw.settings.flow_paths)
    # the settings choose the engine: embedded, or Temporal (runs go to its workers)
    flow_engine = engine if isinstance(engine, Engine) else create_engine(
        runtime, registry.as_mapping(), schedules=bool(engine))
    # not started, an engine runs nothing: the runs it starts are queued for a worker
    run_flows = engine is not False
    # a Temporal engine starts runs on Temporal even where this app runs no background work
    start_engine = run_flows or flow_engine.remote
    sync_registry = syncs if syncs is not None else SyncRegistry.load(pw.settings.sync_paths)
    sync_engine = SyncEngine(runtime, sync_registry)
    from patchwire.connect import ConnectSessions
    from patchwire.tools import McpHttpEndpoint, ToolInvoker

    # flows with a tool trigger are tools where this app runs flows; syncs: records tools
    # an end user's tool of an account they have not connected answers with a link to
    # this app's /connect pages
    tool_invoker = ToolInvoker(runtime, engine=flow_engine if run_flows else None,
                               syncs=sync_registry,
                               links=connect_links or ConnectSessions(runtime))
    mcp_endpoint = McpHttpEndpoint(tool_invoker)
    webhook_inbox = inbox if inbox is not None else Inbox(runtime, flow_engine)
    # its events are processed where this app runs flows, or always when one is given
    process_inbox = run_flows or inbox is not None
    webhook_sources = WebhookSources(runtime)
    source_cache = SourceCache(webhook_sources)
    webhook_inbox.add_handler(sync_engine.handle_webhook_event)  # sync: records in real time
    workers = background_workers(
        runtime,
        refresh=(pw.background_refresh(background_refresh)
                 if background_refresh is not None else None),
        engine=flow_engine if start_engine else None,
        deliveries=run_flows,  # outbound webhooks: dispatch events, send deliveries
        inbox=webhook_inbox if process_inbox else None,
        syncs=sync_engine if run_flows else None)  # scheduled polls and reconciliations

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await pw.open()
        try:
            async with runtime.running(workers), mcp_endpoint.run():  # MCP: its sessions
                yield
        finally:
            if manage_lifecycle:
                await pw.close()

    app = FastAPI(title="Patchwire", version="0.1.0", lifespan=lifespan,
                  docs_url="/api/docs", openapi_url="/api/v1/openapi.json")
    declare_problems(app)
    # --- access control and observability (access/, observability/) ---
    install_problem_handlers(app)
    # FastAPI's own routes (the OpenAPI document, its viewer) are the API's to read
    for route in app.router.routes:
        declare(route, "read")
    policy = access or AccessPolicy()
    key_ring = KeyRing(lambda: pw.store, ttl=policy.cache_ttl)
    end_user_ring = EndUserTokenRing(lambda: pw.store, ttl=policy.cache_ttl)
    auth_limiter = FailedAuthLimiter(policy.max_failures, policy.failure_window)
    # added last = runs first: request ids wrap authentication, so refusals are logged too;
    # each route declares its scope (access/_scopes.py), which the middleware looks up
    app.add_middleware(ApiKeyMiddleware, router=app.router, store=lambda: pw.store,
                       policy=policy, ring=key_ring, limiter=auth_limiter,
                       end_users=end_user_ring)
    # ahead of keys: what a hostile page sends (rebound Host, cross-site) is refused for
    # every route, /mcp included, with or without keys
    # behind a reverse proxy the public URL's name and origin are this server's too
    public = (urlsplit(pw.settings.effective_public_url) if pw.settings.public_url
              else None)
    app.add_middleware(SiteGuard, hosts=(pw.settings.host, *pw.settings.allowed_hosts,
                                         *([public.netloc] if public else [])),
                       origins=[f"{public.scheme}://{public.netloc}"] if public else [])
    app.add_middleware(RequestContextMiddleware)
    app.router.routes.extend(auth_routes(key_ring, auth_limiter))
    app.state.key_ring = key_ring
    app.include_router(ops_router(pw))  # /healthz, /metrics
    # --- end access control and observability ---
    # MCP: an ASGI endpoint (every method: POST, GET for the event stream, DELETE)
    # end-user tokens too: each request is served with its end user's tools only
    app.router.routes.append(declare(Route("/mcp", endpoint=mcp_endpoint), "run",
                                     end_users=True))
    # inbound webhooks: a plain ASGI endpoint that reads the raw body itself
    receiver = WebhookReceiver(source_cache, webhook_inbox)
    app.router.routes.append(declare(Route("/hooks/{source}", methods=["GET", "POST"],
                                           endpoint=receiver), PUBLIC))  # signed instead
    # Webhooks carry their own verification (no API keys, no sessions): they are answered
    # ahead of the API's middleware, which cost as much as the ingest itself (measured:
    # ~3,700 vs ~5,300 events/s); their counts are in the webhook metrics instead.
    app.add_middleware(HooksFirst, receiver=receiver)
    app.state.inbox = webhook_inbox

    app.include_router(connectors_router(pw))
    app.include_router(connections_router(pw))
    app.include_router(calls_router(pw))
    app.include_router(blobs_router(lambda: pw.store))  # binary answers calls kept
    app.include_router(tools_router(pw, tool_invoker))
    app.include_router(flows_router(registry, flow_engine))
    app.include_router(webhooks_router(webhook_sources, source_cache, webhook_inbox))
    app.include_router(deliveries_router(pw))  # outbound webhooks
    app.include_router(records_router(sync_engine))  # sync: /api/v1/syncs, /api/v1/records
    app.include_router(keys_router(lambda: pw.store, key_ring))  # access: /api/v1/keys
    app.include_router(end_users_router(lambda: pw.store, end_user_ring))  # tokens
    app.include_router(connect_router(pw))  # connect links, OAuth apps, /connect pages
    # definitions in force, reloaded by the API and on SIGHUP (`serve`: app.state)
    app.state.definitions = LiveDefinitions(runtime, registry, engine=flow_engine,
                                            syncs=sync_engine,
                                            tools=tool_invoker,
                                            sync_examples=sync_registry.builtins)
    app.include_router(definitions_router(app.state.definitions))
    app.include_router(catalog_router(lambda: pw.connectors, app.state.definitions))
    # --- dashboard (src/patchwire/dashboard): HTML pages at / and their /assets ---
    from patchwire.connect import ConnectSessions
    from patchwire.dashboard import mount_dashboard

    # the Connections page's reconnect button hands out links to the /connect pages above
    # the Catalog page's add button enables a connector as POST /api/v1/catalog/{name}/add
    mount_dashboard(app, pw, engine=flow_engine, invoker=tool_invoker,
                    links=ConnectSessions(runtime),
                    add_connector=app.state.definitions.add_from_catalog)
    # --- end dashboard ---
    return app
