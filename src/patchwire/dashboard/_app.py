"""The dashboard: server-rendered pages at ``/`` over the app's engine, tools and store,
one route module per page (``_overview``, ``_connections``, ``_catalog``, ``_runs``,
``_approvals``, ``_tools``, ``_webhooks``), each route declaring its scope, each module
given only the services it reads (``_services.py``).

Every page is a plain HTML document and every action a plain form post answered with a
redirect (303), so everything works without JavaScript. ``static/dashboard.js`` adds the
live parts: elements with ``data-poll`` re-fetch themselves, and forms with ``data-swap``
post in the background and swap in the fragment the server answers when a request carries
``X-Partial: 1``. No front-end build step, nothing loaded from elsewhere.

Cross-site posts are refused (``Origin`` / ``Sec-Fetch-Site``): without API keys the server
trusts whoever reaches its loopback address, so another site open in the same browser must
not be able to retry, cancel or approve through it. The app's SiteGuard
(``patchwire.access``) does it for every route, these pages' forms included: the dashboard
is mounted only on an app with that guard in front (:func:`mount_dashboard` checks).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from patchwire.access import PUBLIC, SiteGuard, declare
from patchwire.errors import ConfigError
from patchwire.flows import Engine
from patchwire.ports import ConnectLinks
from patchwire.tools import ToolInvoker

from ._approvals import approvals_router
from ._catalog import catalog_router
from ._connections import connections_router
from ._overview import overview_router
from ._render import ASSETS, STATIC, Pages
from ._runs import runs_router
from ._services import DashboardServices
from ._tools import tools_router
from ._webhooks import webhooks_router

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["dashboard_router", "mount_dashboard"]


def mount_dashboard(app: FastAPI, pw: Patchwire, *, engine: Engine,
                    invoker: ToolInvoker, links: ConnectLinks | None = None,
                    add_connector: Callable[[str], Awaitable[object]] | None = None) -> None:
    """Add the dashboard's pages and its static files to ``app``, which must have the
    SiteGuard in front of its routes (``create_app`` adds it): that guard alone refuses
    the forms another site's page posts. ``links``: what hands out connect links (the
    Connections page's reconnect button; without it, no button); ``add_connector``: what
    enables a catalog connector (the Catalog page's add button; without it, none)."""
    if not any(getattr(m, "cls", None) is SiteGuard for m in app.user_middleware):
        raise ConfigError("the dashboard needs the SiteGuard in front of its app (its "
                          "forms change runs and approvals): mount it on create_app's app")
    app.include_router(dashboard_router(DashboardServices.of(
        pw, engine=engine, invoker=invoker, links=links, add_connector=add_connector)))
    # the stylesheet and script, needed by the login page too: public
    app.router.routes.append(declare(Mount(ASSETS, StaticFiles(directory=STATIC),
                                           name="dashboard-assets"), PUBLIC))


def dashboard_router(services: DashboardServices) -> APIRouter:
    """The dashboard's routes (kept out of the OpenAPI document: they answer HTML)."""
    router = APIRouter(include_in_schema=False)
    pages = Pages()
    for page_routes in (overview_router, connections_router, catalog_router, runs_router,
                        approvals_router, tools_router, webhooks_router):
        router.include_router(page_routes(services, pages))
    return router
