"""The overview at ``/``: the connections needing attention (unhealthy, or to be
re-authorised), the call quality of each of the operator's connections with its failures by
kind, breaker and tokens, the end users' connections summed up per connector, charts of the
call log over a window, runs per status and the approvals waiting.

A deployment may serve 10,000 end users with a few connections each, and the page is polled
every 10 s: it shows a row per operator connection but one per connector for all the end
users' connections (how many, of how many end users, their calls summed up in the store),
linking to the Connections page, which pages through them; it reads no end user's token.

The success rate and the breaker count different things, and the page says so: the rate
counts every call of the window, however it failed (a refused key, an unknown order); the
breaker counts only the requests of its own short window that failed in a way that says
the upstream is unwell (5xx, timeouts, connection errors), and opens only past its minimum
number of requests. "11.8% success" next to "closed" is then explained, not contradicted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from patchwire.access import requires
from patchwire.store.reports import REMOVED_SHOWN, ChartPoint

from ._render import Chart, Pages, is_partial, line_chart
from ._runs import RUN_STATUSES
from ._services import DashboardServices
from ._token_view import token_view

__all__ = ["REMOVED_SHOWN", "WINDOWS", "overview_router", "window_start"]

#: connections needing attention named on the overview (the rest: on the Connections page)
ATTENTION_SHOWN = 10

WINDOWS: dict[str, timedelta] = {"1h": timedelta(hours=1), "24h": timedelta(hours=24),
                                 "7d": timedelta(days=7)}


def window_start(window: str, now: datetime | None = None) -> tuple[datetime, timedelta]:
    """The start of a named window (``1h``, ``24h``, ``7d``) and its length."""
    length = WINDOWS.get(window, WINDOWS["24h"])
    return (now or datetime.now(UTC)) - length, length


def charts(series: list[ChartPoint], length: timedelta) -> list[Chart]:
    times = [p.start for p in series]
    return [
        line_chart("Success rate", times,
                   [("success rate", "s-ok", [p.success_rate for p in series])],
                   fmt="pct", y_max=1.0),
        line_chart("Latency", times,
                   [("max", "s-max", [p.max_ms for p in series]),
                    ("average", "s-avg", [p.avg_ms for p in series])], fmt="ms"),
        line_chart("Retries per call", times,
                   [("retries per call", "s-retry",
                     [p.retries_per_call for p in series])]),
        line_chart("Calls", times,
                   [("calls", "s-calls", [float(p.calls) for p in series])],
                   fmt="num0"),
    ]


def overview_router(services: DashboardServices, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    connections = services.connections

    async def overview_context(window: str, connector: str | None) -> dict[str, Any]:
        window = window if window in WINDOWS else "24h"
        now = datetime.now(UTC)
        since, length = window_start(window, now)
        await connections.flush()  # calls made a moment ago are in the numbers
        reports = services.reports()
        report = await reports.overview(since, removed_shown=REMOVED_SHOWN)
        by_key = {(s.connector, s.connection): s for s in report.stats}
        # rows sort by connector, then: the connections one by one (0), the end users'
        # summed up (1), the removed ones beyond those named (2)
        rows: list[dict[str, Any]] = []
        for rec in report.operator_connections:
            rows.append({"connector": rec.connector, "connection": rec.name, "order": 0,
                         "stats": by_key.pop((rec.connector, rec.name), None),
                         "token": token_view(services, rec)})
        for (conn_connector, conn_name), st in by_key.items():  # none, or removed since
            rows.append({"connector": conn_connector, "connection": conn_name, "order": 0,
                         "stats": st, "token": None})
        for summary in report.end_users:
            rows.append({"connector": summary.connector, "connection": None, "order": 1,
                         "end_users": summary, "stats": summary.stats, "token": None})
        for summary in report.removed:
            rows.append({"connector": summary.connector, "connection": None, "order": 2,
                         "removed": summary, "stats": summary.stats, "token": None})
        rows.sort(key=lambda r: (r["connector"], r["order"], r["connection"] or ""))
        breakers = {name: connections.breaker_state(name)
                    for name in sorted({r["connector"] for r in rows})}
        # raised above everything else: a connection its end user must reconnect, or
        # whose calls keep failing
        attention, attention_total = await reports.attention(limit=ATTENTION_SHOWN)
        series = await reports.call_series(since, now, buckets=24, connector=connector)
        runs = await reports.run_status_counts(since.timestamp())
        pending = await services.tools().list_approvals(status="pending", limit=100)
        return {"window": window, "windows": list(WINDOWS), "rows": rows,
                "breakers": breakers, "charts": charts(series, length),
                "chart_connector": connector,
                "connectors": sorted({r["connector"] for r in rows}),
                "run_counts": runs, "run_statuses": RUN_STATUSES,
                "pending_approvals": len(pending), "since": since,
                "attention": attention, "attention_total": attention_total}

    @router.get("/", dependencies=[requires("read")], response_class=HTMLResponse)
    async def overview(request: Request, window: str = "24h",
                       connector: str | None = None) -> HTMLResponse:
        context = await overview_context(window, connector or None)
        if is_partial(request):
            return pages.page("_overview_live.html", request, **context)
        return pages.page("overview.html", request, **context)

    return router
