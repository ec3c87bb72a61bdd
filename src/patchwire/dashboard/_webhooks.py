"""The webhook pages: the inbox (accepted events and rejected requests) and the outbound
deliveries, with redelivering one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from patchwire.access import requires
from patchwire.errors import LookupFailed, PatchwireError

from ._render import Pages
from ._services import DashboardServices

__all__ = ["webhooks_router"]


def webhooks_router(services: DashboardServices, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    # A page that cannot read its data (the store, a table) says "not available" instead
    # of failing, so that the rest of the dashboard stays usable.

    @router.get("/inbox", dependencies=[requires("read")], response_class=HTMLResponse)
    async def inbox(request: Request, source: str | None = None,
                    show: str = "all") -> HTMLResponse:
        show = show if show in ("all", "accepted", "rejected") else "all"
        events: list[Any] = []
        rejections: list[Any] = []
        unavailable = None
        try:
            box = services.inbox()
            if show != "rejected":
                events = await box.list_events(source=source or None, limit=100)
            if show != "accepted":
                rejections = await box.list_rejections(source=source or None, limit=100)
        except (AttributeError, TypeError, PatchwireError) as exc:
            unavailable = f"{type(exc).__name__}: {exc}"
        return pages.page("inbox.html", request, source=source or "", show=show,
                          events=events, rejections=rejections, unavailable=unavailable)

    @router.get("/deliveries", dependencies=[requires("read")], response_class=HTMLResponse)
    async def deliveries(request: Request, status: str | None = None) -> HTMLResponse:
        status = status if status in ("pending", "succeeded", "failed") else None
        found: list[Any] = []
        urls: dict[str, str] = {}
        unavailable = None
        try:
            outbox = services.outbox()
            found = await outbox.list_deliveries(status=status, limit=100)
            urls = {s.id: s.url for s in await outbox.list_subscriptions()}
        except (AttributeError, TypeError, PatchwireError) as exc:
            unavailable = f"{type(exc).__name__}: {exc}"
        return pages.page("deliveries.html", request, status=status or "",
                          deliveries=found, urls=urls, unavailable=unavailable)

    @router.post("/deliveries/{delivery_id}/redeliver", dependencies=[requires("run")])
    async def redeliver(request: Request, delivery_id: str) -> Response:
        try:
            await services.outbox().redeliver(delivery_id)
        except LookupFailed as exc:
            return pages.not_found(request, exc)
        return RedirectResponse("/deliveries", status_code=303)

    return router
