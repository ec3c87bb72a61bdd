"""The catalog pages: every real-world connector Patchwire ships, searched and filtered by
category; one connector's auth facts, settings, actions and sources; adding it to the
deployment, and handing an end user a connect link for it (where connecting starts)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from patchwire.access import requires
from patchwire.catalog import CatalogEntry, load_catalog
from patchwire.connectors.spec import CATALOG_CATEGORIES
from patchwire.errors import LookupFailed, PatchwireError, SpecError

from ._render import Pages
from ._services import DashboardServices

__all__ = ["catalog_router"]

#: the longest search text or end user id read from a form
MAX_FIELD = 200


def catalog_router(services: DashboardServices, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def enabled() -> set[str]:
        return {spec.name for spec in services.connections.connectors}

    def detail_page(request: Request, entry: CatalogEntry, code: int = 200, **extra: Any
                    ) -> HTMLResponse:
        on = entry.name in enabled()
        return pages.page("catalog_connector.html", request, code, e=entry.details(),
                          enabled=on, can_add=services.add_connector is not None and not on,
                          can_link=services.links is not None and on, **extra)

    @router.get("/catalog", dependencies=[requires("read")], response_class=HTMLResponse)
    async def catalog(request: Request, q: str = "", category: str = "") -> HTMLResponse:
        q, category = q[:MAX_FIELD], category[:40]
        entries = load_catalog()
        on = enabled()
        rows: list[tuple[CatalogEntry, float | None]] = (
            list(entries.search(q, limit=200)) if q.strip() else [(e, None) for e in entries])
        if category:
            rows = [(e, s) for e, s in rows if category in e.categories]
        return pages.page("catalog.html", request, rows=rows, q=q, category=category,
                          categories=CATALOG_CATEGORIES, enabled=on, total=len(entries))

    @router.get("/catalog/{name}", dependencies=[requires("read")],
                response_class=HTMLResponse)
    async def connector(request: Request, name: str) -> HTMLResponse:
        try:
            entry = load_catalog().get(name[:MAX_FIELD])
        except LookupFailed as exc:
            return pages.not_found(request, exc)
        return detail_page(request, entry)

    @router.post("/catalog/{name}/add", dependencies=[requires("admin")],
                 response_class=HTMLResponse)
    async def add(request: Request, name: str) -> HTMLResponse:
        """Write the connector's file to the deployment and reload the definitions."""
        try:
            entry = load_catalog().get(name[:MAX_FIELD])
        except LookupFailed as exc:
            return pages.not_found(request, exc)
        if services.add_connector is None:
            return detail_page(request, entry, 409,
                               notice="adding connectors is not available on this server")
        try:
            await services.add_connector(entry.name)
        except SpecError as exc:
            return detail_page(request, entry, 409, notice=(
                f"{entry.name}.yaml was written, but the definitions did not reload: "
                f"{len(exc.problems)} problem(s), e.g. {exc.problems[0]}"))
        except PatchwireError as exc:
            return detail_page(request, entry, 409, notice=f"{exc.code}: {exc}")
        return detail_page(request, entry, notice=f"{entry.title} is enabled: its file is "
                           f"in the connector directory and in force now.")

    @router.post("/catalog/{name}/connect-link", dependencies=[requires("connect")],
                 response_class=HTMLResponse)
    async def connect_link(request: Request, name: str) -> HTMLResponse:
        """A connect link for one end user to connect their own account of it."""
        try:
            entry = load_catalog().get(name[:MAX_FIELD])
        except LookupFailed as exc:
            return pages.not_found(request, exc)
        form = await request.form()
        end_user = str(form.get("end_user") or "").strip()[:MAX_FIELD]
        links = services.links
        if links is None or entry.name not in enabled():
            return detail_page(request, entry, 409, notice=(
                "connect links are not available on this server" if links is None else
                f"add {entry.title} to the deployment first"))
        if not end_user:
            return detail_page(request, entry, 422, notice="say which end user the link is for")
        try:
            link = await links.link(end_user, [entry.name])
        except PatchwireError as exc:
            return detail_page(request, entry, 409, notice=f"{exc.code}: {exc}")
        except ValueError as exc:  # a value the connect sessions refuse (said in words)
            return detail_page(request, entry, 422, notice=str(exc))
        return detail_page(request, entry, link=link, end_user=end_user)

    return router
