"""The Connections page: every end user's connections, a page at a time, with their health
over a window (calls, success rate, p95, failures by kind, the last error), token status and
flags; a connection's own page with its call log; and a reconnect link to hand to the end
user.

A deployment may serve 10,000 end users: the page reads one page of connections with their
numbers in one statement (``ReportRepository.connection_health``) and never a connection at
a time; token status is read from the records that statement returned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from patchwire.access import requires
from patchwire.errors import LookupFailed, PatchwireError, UnknownConnection
from patchwire.store.records import ConnectionRecord
from patchwire.store.reports import ConnectionHealth, failure_kind

from ._overview import WINDOWS, window_start
from ._render import Pages
from ._services import DashboardServices
from ._token_view import token_view

__all__ = ["CALLS_PAGE", "PAGE", "connections_router"]

#: connections per page
PAGE = 100
#: calls per page of a connection's call log
CALLS_PAGE = 50
#: the furthest page one may ask for (an offset beyond any real deployment)
MAX_PAGE = 100_000
#: longest filter value taken (an end user's id is at most 200 characters)
MAX_FILTER = 200


def _page_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


def _cursor(text: str) -> tuple[datetime, str] | None:
    """``<iso time>|<call id>`` of the last call of the previous page, else None."""
    moment, _, call_id = text.partition("|")
    if not call_id:
        return None
    try:
        at = datetime.fromisoformat(moment)
    except ValueError:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)), call_id


def connections_router(services: DashboardServices, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def row(health: ConnectionHealth) -> dict[str, Any]:
        return {"h": health, "c": health.record, "token": token_view(services, health.record)}

    async def one(name: str, window: str) -> dict[str, Any]:
        since, _ = window_start(window)
        await services.connections.flush()  # calls made a moment ago are in the numbers
        found = await services.reports().connection_health(since, name=name, limit=1)
        if not found.rows:
            raise UnknownConnection(f"no connection named {name!r}")
        return row(found.rows[0])

    async def connection_page(request: Request, name: str, window: str, before: str,
                              code: int = 200, **extra: Any) -> HTMLResponse:
        window = window if window in WINDOWS else "24h"
        try:
            current = await one(name, window)
        except LookupFailed as exc:
            return pages.not_found(request, exc)
        calls = await services.reports().connection_calls(name, before=_cursor(before),
                                                          limit=CALLS_PAGE + 1)
        older = None
        if len(calls) > CALLS_PAGE:
            calls = calls[:CALLS_PAGE]
            older = f"{calls[-1].started_at.isoformat()}|{calls[-1].id}"
        return pages.page("connection.html", request, code, r=current, calls=calls,
                          older=older, window=window, windows=list(WINDOWS),
                          can_reconnect=services.links is not None, kind_of=failure_kind,
                          **extra)

    @router.get("/connections", dependencies=[requires("read")],
                response_class=HTMLResponse)
    async def connections(request: Request, window: str = "24h", end_user: str = "",
                          connector: str = "", attention: str = "",
                          page: str = "1") -> HTMLResponse:
        window = window if window in WINDOWS else "24h"
        end_user, connector = end_user.strip()[:MAX_FILTER], connector.strip()[:MAX_FILTER]
        number = _page_number(page)
        since, _ = window_start(window)
        await services.connections.flush()
        found = await services.reports().connection_health(
            since, end_user=end_user or None, connector=connector or None,
            attention=bool(attention), offset=(number - 1) * PAGE, limit=PAGE)
        filters = {"window": window, "end_user": end_user, "connector": connector,
                   "attention": "1" if attention else ""}
        return pages.page(
            "connections.html", request, rows=[row(h) for h in found.rows], page=number,
            more=found.more, filters=filters, windows=list(WINDOWS), window=window,
            connectors=sorted(spec.name for spec in services.connections.connectors),
            can_reconnect=services.links is not None)

    @router.get("/connections/calls", dependencies=[requires("read")],
                response_class=HTMLResponse)
    async def connection_calls(request: Request, connection: str = "", window: str = "24h",
                               before: str = "") -> HTMLResponse:
        return await connection_page(request, connection, window, before)

    @router.post("/connections/reconnect", dependencies=[requires("connect")],
                 response_class=HTMLResponse)
    async def reconnect(request: Request) -> HTMLResponse:
        """A fresh connect link for the connection's end user and connector: they open it
        to connect again, and the connection's credentials are replaced."""
        form = await request.form()
        name = str(form.get("connection") or "")[:MAX_FILTER]
        window = str(form.get("window") or "24h")
        links = services.links
        try:
            current = await one(name, window if window in WINDOWS else "24h")
        except LookupFailed as exc:
            return pages.not_found(request, exc)
        rec: ConnectionRecord = current["c"]
        if links is None or rec.end_user is None:
            notice = ("connect links are not available on this server" if links is None else
                      "an operator's connection has no end user to send a link to: "
                      "reconnect it with `patchwire connection connect`")
            return await connection_page(request, name, window, "", 409, notice=notice)
        try:
            link = await links.link(rec.end_user, [rec.connector], connection=rec.name)
        except PatchwireError as exc:
            return await connection_page(request, name, window, "", 409,
                                         notice=f"{exc.code}: {exc}")
        except ValueError as exc:  # a value the connect sessions refuse (said in words)
            return await connection_page(request, name, window, "", 409, notice=str(exc))
        return await connection_page(request, name, window, "", link=link)

    return router
