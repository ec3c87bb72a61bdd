"""The dashboard: server-rendered pages at ``/`` over the app's Patchwire, engine and tools.

Every page is a plain HTML document and every action a plain form post answered with a
redirect (303), so everything works without JavaScript. ``static/dashboard.js`` adds the
live parts: elements with ``data-poll`` re-fetch themselves, and forms with ``data-swap``
post in the background and swap in the fragment the server answers when a request carries
``X-Partial: 1``. No front-end build step, nothing loaded from elsewhere.

Cross-site posts are refused (``Origin`` / ``Sec-Fetch-Site``): without API keys the server
trusts whoever reaches its loopback address, so another site open in the same browser must
not be able to retry, cancel or approve through it. The app's SiteGuard (``server/``) does it
for every route, these pages' forms included: the dashboard is mounted only on an app
with that guard in front (:func:`mount_dashboard` checks).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.staticfiles import StaticFiles

from patchwire.auth import TokenSet
from patchwire.auth.vault import connection_aad
from patchwire.connectors.spec import OAuth2Auth
from patchwire.dashboard import _queries as q
from patchwire.errors import (
    ApprovalStateError,
    ConfigError,
    LookupFailed,
    PatchwireError,
    RunStateError,
)
from patchwire.flows import FINISHED, FlowEngine, RunRecord, StepRecord
from patchwire.server import SiteGuard
from patchwire.store.tools import ToolRepository
from patchwire.tools import ToolInvoker, redact_arguments

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["ASSETS", "Chart", "dashboard_router", "line_chart", "mount_dashboard", "templates"]

# -- rendering: templates, filters, inline SVG charts ----------------------------------

TEMPLATES = Path(__file__).parent / "templates"
#: JSON longer than this is cut on a page (a step output can be megabytes)
MAX_JSON_CHARS = 20_000


def _moment(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


def fmt_time(value: Any) -> str:
    """Epoch seconds or a datetime as ``2025-01-02 03:04:05`` (UTC)."""
    moment = _moment(value)
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_iso(value: Any) -> str:
    moment = _moment(value)
    return "" if moment is None else moment.astimezone(UTC).isoformat()


def fmt_ago(value: Any, now: float | None = None) -> str:
    """``3 s ago``, ``in 5 min``: relative to now."""
    moment = _moment(value)
    if moment is None:
        return "—"
    delta = moment.timestamp() - (datetime.now(UTC).timestamp() if now is None else now)
    text = fmt_duration(abs(delta))
    return f"in {text}" if delta > 0 else f"{text} ago"


def fmt_duration(seconds: Any) -> str:
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172_800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def fmt_ms(value: Any) -> str:
    if value is None:
        return "—"
    v = float(value)
    return f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def fmt_pct(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def fmt_num(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}"


def to_json(value: Any, limit: int = MAX_JSON_CHARS) -> str:
    """Redacted, pretty JSON for a page (escaped by the template like any text)."""
    text = orjson.dumps(redact_arguments(value), default=str,
                        option=orjson.OPT_INDENT_2).decode()
    if len(text) > limit:
        return text[:limit] + f"\n… ({len(text) - limit:,} more characters not shown)"
    return text


def short(value: Any, limit: int = 120) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html"], default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(time=fmt_time, iso=fmt_iso, ago=fmt_ago, duration=fmt_duration,
                       ms=fmt_ms, pct=fmt_pct, num=fmt_num, json=to_json, short=short)
    return env


@dataclass(frozen=True)
class Chart:
    """A line chart as SVG coordinates (numbers only, so nothing to escape)."""

    title: str
    width: int
    height: int
    lines: list[tuple[str, str]]  # (css class, "x,y x,y ...") per series, gaps split
    dots: list[tuple[str, float, float, str]]  # (css class, x, y, tooltip)
    y_labels: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    legend: list[tuple[str, str]]
    empty: bool


def line_chart(title: str, times: Sequence[datetime],
               series: Sequence[tuple[str, str, Sequence[float | None]]], *,
               fmt: str = "num", y_max: float | None = None, width: int = 420,
               height: int = 150) -> Chart:
    """``series``: (legend, css class, values per time) — None is a gap (no calls)."""
    left, right, top, bottom = 46, 8, 8, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, _, vs in series for v in vs if v is not None]
    top_value = y_max if y_max is not None else max(values, default=0.0)
    top_value = top_value if top_value > 0 else 1.0
    n = max(1, len(times) - 1)

    def x(i: int) -> float:
        return round(left + plot_w * i / n, 1)

    def y(v: float) -> float:
        return round(top + plot_h * (1 - min(v, top_value) / top_value), 1)

    formats: dict[str, Callable[[float], str]] = {
        "pct": fmt_pct, "ms": fmt_ms, "num0": lambda v: fmt_num(v, 0)}
    label: Callable[[float], str] = formats.get(fmt, fmt_num)
    lines: list[tuple[str, str]] = []
    dots: list[tuple[str, float, float, str]] = []
    for legend, css, vs in series:
        run: list[str] = []
        for i, v in enumerate(vs):
            if v is None:
                if len(run) > 1:
                    lines.append((css, " ".join(run)))
                run = []
                continue
            run.append(f"{x(i)},{y(v)}")
            dots.append((css, x(i), y(v), f"{legend} {fmt_time(times[i])}: {label(v)}"))
        if len(run) > 1:
            lines.append((css, " ".join(run)))
    y_labels = [(y(top_value * f), label(top_value * f)) for f in (0.0, 0.5, 1.0)]
    picks = sorted({0, len(times) // 2, len(times) - 1}) if times else []
    x_labels = [(x(i), times[i].astimezone(UTC).strftime("%m-%d %H:%M")) for i in picks]
    return Chart(title, width, height, lines, dots, y_labels, x_labels,
                 [(legend, css) for legend, css, _ in series], empty=not values)


# -- routes -----------------------------------------------------------------------------

STATIC = Path(__file__).parent / "static"
#: where the CSS and JS are served
ASSETS = "/assets"
#: runs per page of the runs list
PAGE = 50
RUN_STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")
APPROVAL_STATUSES = ("pending", "approved", "denied", "expired", "used", "all")
#: the session id the playground's calls carry in the tool audit
PLAYGROUND_SESSION = "dashboard-playground"
#: who decided, when the person gave no name
DEFAULT_DECIDER = "dashboard"
NAME_COOKIE = "patchwire_name"


def mount_dashboard(app: FastAPI, pw: Patchwire, *, engine: FlowEngine,
                    invoker: ToolInvoker) -> None:
    """Add the dashboard's pages and its static files to ``app``, which must have the
    SiteGuard in front of its routes (``create_app`` adds it): that guard alone refuses
    the forms another site's page posts."""
    if not any(getattr(m, "cls", None) is SiteGuard for m in app.user_middleware):
        raise ConfigError("the dashboard needs the SiteGuard in front of its app (its "
                          "forms change runs and approvals): mount it on create_app's app")
    app.include_router(dashboard_router(pw, engine=engine, invoker=invoker))
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="dashboard-assets")


def _partial(request: Request) -> bool:
    return request.headers.get("x-partial") == "1"


def _epoch(text: str | None) -> float | None:
    """A ``datetime-local`` (or ISO) value, taken as UTC unless it says otherwise."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def dashboard_router(pw: Patchwire, *, engine: FlowEngine,
                     invoker: ToolInvoker) -> APIRouter:
    """The dashboard's routes (kept out of the OpenAPI document: they answer HTML)."""
    router = APIRouter(include_in_schema=False)
    env = templates()

    def page(template: str, request: Request, code: int = 200, /, **context: Any
             ) -> HTMLResponse:
        html = env.get_template(template).render(
            request=request, assets=ASSETS, path=request.url.path, now=time.time(),
            **context)
        return HTMLResponse(html, status_code=code)

    def not_found(request: Request, exc: PatchwireError) -> HTMLResponse:
        return page("message.html", request, 404, title="Not found", message=str(exc))

    def repo() -> ToolRepository:
        return ToolRepository(pw.store)

    # -- overview -------------------------------------------------------------------------

    async def overview_context(window: str, connector: str | None) -> dict[str, Any]:
        window = window if window in q.WINDOWS else "24h"
        now = datetime.now(UTC)
        since, length = q.window_start(window, now)
        await pw.flush()  # calls made a moment ago are in the numbers
        stats = await q.call_stats(pw.store, since)
        by_key = {(s.connector, s.connection): s for s in stats}
        rows: list[dict[str, Any]] = []
        connections = await pw.list_connections()
        for info in connections:
            rows.append({"connector": info.connector, "connection": info.name,
                         "stats": by_key.pop((info.connector, info.name), None),
                         "token": await token_status(info.name, info.connector)})
        for (conn_connector, conn_name), st in by_key.items():  # calls of removed ones
            rows.append({"connector": conn_connector, "connection": conn_name, "stats": st,
                         "token": None})
        rows.sort(key=lambda r: (r["connector"], r["connection"] or ""))
        breakers = {name: pw.breaker_state(name).to_dict()
                    for name in sorted({r["connector"] for r in rows})}
        series = await q.call_series(pw.store, since, now, buckets=24, connector=connector)
        runs = await q.run_status_counts(pw.store, since.timestamp())
        pending = await repo().list_approvals(status="pending", limit=100)
        return {"window": window, "windows": list(q.WINDOWS), "rows": rows,
                "breakers": breakers, "charts": charts(series, length),
                "chart_connector": connector,
                "connectors": sorted({r["connector"] for r in rows}),
                "run_counts": runs, "run_statuses": RUN_STATUSES,
                "pending_approvals": len(pending), "since": since}

    def charts(series: list[q.ChartPoint], length: timedelta) -> list[Chart]:
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

    async def token_status(name: str, connector: str) -> dict[str, Any] | None:
        """For OAuth2 connections: when the access token expires, whether a person must
        authorise again. Only these two facts leave this function, never a token."""
        if connector not in pw.connectors or not isinstance(
                pw.connectors.get(connector).auth, OAuth2Auth):
            return None
        try:
            rec = await pw.store.get_connection(name)
            secrets = (pw.vault.decrypt_json(rec.secrets, aad=connection_aad(rec.id))
                       if rec.secrets else {})
            tokens = TokenSet.from_secrets(secrets)
            reauth = await pw.needs_reauth(name)
        except PatchwireError as exc:
            return {"error": f"cannot read: {exc.code}"}
        return {"has_token": tokens is not None, "needs_reauth": reauth,
                "expires_at": tokens.expires_at if tokens else None}

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request, window: str = "24h",
                       connector: str | None = None) -> HTMLResponse:
        context = await overview_context(window, connector or None)
        if _partial(request):
            return page("_overview_live.html", request, **context)
        return page("overview.html", request, **context)

    # -- runs -----------------------------------------------------------------------------

    def run_filters(flow: str | None, status: str | None, since: str | None,
                    until: str | None) -> dict[str, str]:
        found = {"flow": flow or "", "status": status if status in RUN_STATUSES else "",
                 "since": since or "", "until": until or ""}
        return {k: v for k, v in found.items() if v}

    async def runs_context(filters: dict[str, str], before: str | None) -> dict[str, Any]:
        error = None
        try:
            records = await engine.list_runs(
                flow_id=filters.get("flow"), status=filters.get("status"),
                since=_epoch(filters.get("since")), until=_epoch(filters.get("until")),
                before=before or None, limit=PAGE + 1)
        except LookupFailed:  # a cursor of a run that was purged meanwhile
            records, error = [], "That page no longer exists (its runs were deleted)."
        more = len(records) > PAGE
        records = records[:PAGE]
        query = urlencode(filters)
        older = (f"/runs?{urlencode({**filters, 'before': records[-1].id})}"
                 if more and records else None)
        live = not before or any(r.status not in FINISHED for r in records)
        return {"runs": records, "filters": filters, "query": query, "older": older,
                "before": before or "", "live": live, "error": error,
                "rows_url": "/runs/rows?" + urlencode(
                    {**filters, **({"before": before} if before else {})})}

    @router.get("/runs", response_class=HTMLResponse)
    async def runs(request: Request, flow: str | None = None, status: str | None = None,
                   since: str | None = None, until: str | None = None,
                   before: str | None = None) -> HTMLResponse:
        filters = run_filters(flow, status, since, until)
        context = await runs_context(filters, before)
        if _partial(request):
            return page("_runs_table.html", request, **context)
        return page("runs.html", request, flows=sorted(f.id for f in engine.flows()),
                    statuses=RUN_STATUSES, **context)

    @router.get("/runs/rows", response_class=HTMLResponse)
    async def runs_rows(request: Request, flow: str | None = None,
                        status: str | None = None, since: str | None = None,
                        until: str | None = None, before: str | None = None) -> HTMLResponse:
        context = await runs_context(run_filters(flow, status, since, until), before)
        return page("_runs_table.html", request, **context)

    async def run_context(run_id: str) -> dict[str, Any]:
        record = await engine.get_run(run_id)
        steps = await engine.steps(run_id)
        definition = await q.flow_definition(pw.store, record.flow_id, record.flow_version)
        return {"run": record, "timeline": timeline(record, steps, q.step_specs(definition)),
                "finished": record.status in FINISHED,
                "failed_step": (record.error or {}).get("step")
                if isinstance(record.error, Mapping) else None}

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_detail(request: Request, run_id: str) -> HTMLResponse:
        try:
            context = await run_context(run_id)
        except LookupFailed as exc:
            return not_found(request, exc)
        if _partial(request):
            return page("_run_body.html", request, **context)
        return page("run.html", request, **context)

    async def run_action(request: Request, run_id: str, action: str) -> Response:
        notice = None
        try:
            if action == "retry":
                await engine.retry(run_id)
                notice = "Retrying from the failed step."
            else:
                await engine.cancel(run_id, reason="cancelled from the dashboard")
                notice = "Cancelled."
        except LookupFailed as exc:
            return not_found(request, exc)
        except RunStateError as exc:
            notice = str(exc)
        if _partial(request):
            context = await run_context(run_id)
            return page("_run_body.html", request, notice=notice, **context)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @router.post("/runs/{run_id}/retry")
    async def retry_run(request: Request, run_id: str) -> Response:
        return await run_action(request, run_id, "retry")

    @router.post("/runs/{run_id}/cancel")
    async def cancel_run(request: Request, run_id: str) -> Response:
        return await run_action(request, run_id, "cancel")

    # -- approvals ------------------------------------------------------------------------

    @router.get("/approvals", response_class=HTMLResponse)
    async def approvals(request: Request, status: str = "pending") -> HTMLResponse:
        status = status if status in APPROVAL_STATUSES else "pending"
        found = await repo().list_approvals(status=None if status == "all" else status,
                                            limit=200)
        return page("approvals.html", request, approvals=found, status=status,
                    statuses=APPROVAL_STATUSES, name=request.cookies.get(NAME_COOKIE, ""),
                    now_dt=datetime.now(UTC))

    @router.post("/approvals/{approval_id}/{verdict}")
    async def decide(request: Request, approval_id: str, verdict: str) -> Response:
        if verdict not in ("approve", "deny"):
            return page("message.html", request, 404, title="Not found",
                        message="An approval is approved or denied.")
        form = await request.form()
        name = str(form.get("by") or "").strip()[:100]
        reason = str(form.get("reason") or "").strip()[:2000] or None
        who = f"{DEFAULT_DECIDER}:{name}" if name else DEFAULT_DECIDER
        notice = None
        try:
            record = await repo().decide_approval(approval_id, approved=verdict == "approve",
                                                  decided_by=who, reason=reason)
        except LookupFailed as exc:
            return not_found(request, exc)
        except ApprovalStateError as exc:
            notice = str(exc)
            record = await repo().get_approval(approval_id)
        if _partial(request):
            response: Response = page("_approval.html", request, a=record, notice=notice,
                                      name=name, now_dt=datetime.now(UTC))
        else:
            response = RedirectResponse("/approvals", status_code=303)
        if name:  # the next decision is prefilled with the same name
            response.set_cookie(NAME_COOKIE, name, max_age=30 * 86400, samesite="strict",
                                httponly=True)
        return response

    # -- tool audit -----------------------------------------------------------------------

    @router.get("/tool-audit", response_class=HTMLResponse)
    async def tool_audit(request: Request, tool: str | None = None,
                         session: str | None = None, invalid: str | None = None
                         ) -> HTMLResponse:
        only_invalid = invalid in ("1", "true", "on")
        calls = await invoker.tool_calls(tool=tool or None, session_id=session or None,
                                         limit=300)
        retried = q.retried_calls(calls)
        shown = [c for c in calls if c.validation_failed] if only_invalid else calls
        counts = await repo().tool_call_counts()
        invalid_total = sum(1 for c in calls if c.validation_failed)
        return page("tool_audit.html", request, calls=shown[:200], retried=retried,
                    counts=counts, tool=tool or "", session=session or "",
                    invalid=only_invalid, invalid_total=invalid_total,
                    retried_total=len(retried),
                    retried_ok=sum(1 for r in retried.values() if r.status == "ok"))

    # -- playground -----------------------------------------------------------------------

    @router.get("/playground", response_class=HTMLResponse)
    async def playground(request: Request, tool: str | None = None) -> HTMLResponse:
        catalog = await invoker.catalog()
        chosen = catalog.find(tool) if tool else None
        return page("playground.html", request, tools=list(catalog), tool=chosen,
                    fields=form_fields(chosen.input_schema) if chosen else [],
                    values={}, raw="", result=None, asked=tool or "")

    @router.post("/playground/{name}")
    async def playground_call(request: Request, name: str) -> Response:
        catalog = await invoker.catalog()
        chosen = catalog.find(name)
        form = await request.form()
        values = {k[4:]: str(v) for k, v in form.items() if k.startswith("arg.")}
        raw = str(form.get("raw") or "").strip()
        fields = form_fields(chosen.input_schema) if chosen else []
        arguments: Any
        if raw:
            try:
                arguments = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                arguments = None
                result: dict[str, Any] | None = {
                    "status": "invalid_json", "is_error": True,
                    "text": f"The arguments are not valid JSON: {exc}", "data": None,
                    "approval_id": None}
        else:
            arguments = build_arguments(fields, values)
        if arguments is not None or not raw:
            outcome = await invoker.invoke(name, arguments, session_id=PLAYGROUND_SESSION)
            result = {"status": outcome.status, "is_error": outcome.is_error,
                      "text": outcome.text, "data": outcome.data,
                      "approval_id": outcome.approval_id, "truncated": outcome.truncated}
        if _partial(request):
            return page("_tool_result.html", request, result=result)
        return page("playground.html", request, tools=list(catalog), tool=chosen,
                    fields=fields, values=values, raw=raw, result=result, asked=name)

    # -- webhooks: inbox and deliveries -------------------------------------------------

    # Built by the webhooks work alongside this page: imported when a page is asked for,
    # so the rest of the dashboard works whatever state that module is in, and these pages
    # say "not available" instead of failing.

    @router.get("/inbox", response_class=HTMLResponse)
    async def inbox(request: Request, source: str | None = None,
                    show: str = "all") -> HTMLResponse:
        show = show if show in ("all", "accepted", "rejected") else "all"
        events: list[Any] = []
        rejections: list[Any] = []
        unavailable = None
        try:
            from patchwire.webhooks import Inbox

            box = Inbox(pw)
            if show != "rejected":
                events = await box.list_events(source=source or None, limit=100)
            if show != "accepted":
                rejections = await box.list_rejections(source=source or None, limit=100)
        except (ImportError, AttributeError, TypeError, PatchwireError) as exc:
            unavailable = f"{type(exc).__name__}: {exc}"
        return page("inbox.html", request, source=source or "", show=show, events=events,
                    rejections=rejections, unavailable=unavailable)

    @router.get("/deliveries", response_class=HTMLResponse)
    async def deliveries(request: Request, status: str | None = None) -> HTMLResponse:
        status = status if status in ("pending", "succeeded", "failed") else None
        found: list[Any] = []
        urls: dict[str, str] = {}
        unavailable = None
        try:
            from patchwire.webhooks import WebhookOutbox

            outbox = WebhookOutbox.of(pw)
            found = await outbox.list_deliveries(status=status, limit=100)
            urls = {s.id: s.url for s in await outbox.list_subscriptions()}
        except (ImportError, AttributeError, TypeError, PatchwireError) as exc:
            unavailable = f"{type(exc).__name__}: {exc}"
        return page("deliveries.html", request, status=status or "", deliveries=found,
                    urls=urls, unavailable=unavailable)

    @router.post("/deliveries/{delivery_id}/redeliver")
    async def redeliver(request: Request, delivery_id: str) -> Response:
        from patchwire.webhooks import WebhookOutbox

        try:
            await WebhookOutbox.of(pw).redeliver(delivery_id)
        except LookupFailed as exc:
            return not_found(request, exc)
        return RedirectResponse("/deliveries", status_code=303)

    return router


# -- run timeline ------------------------------------------------------------------------


def timeline(run: RunRecord, steps: list[StepRecord],
             specs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The run's steps in the order they started, each with its place on a time bar
    (percent of the run's span) and the declaration it ran (its inputs as written)."""
    end = run.finished_at or max([s.finished_at or s.started_at for s in steps]
                                 + [run.updated_at, time.time() if run.status not in FINISHED
                                    else run.updated_at])
    start = min([run.created_at] + [s.started_at for s in steps])
    span = max(end - start, 1e-6)
    out: list[dict[str, Any]] = []
    for s in steps:
        last = s.finished_at if s.finished_at is not None else end
        declared = dict(specs.get(s.key.rsplit(".", 1)[-1].split("[", 1)[0], {}))
        inputs = {k: v for k, v in declared.items()
                  if k not in ("id", "title", "description", "then", "else", "do", "cases",
                               "default", "parallel", "on_error")}
        out.append({
            "step": s, "offset": max(s.started_at - start, 0.0),
            "duration": None if s.finished_at is None else s.finished_at - s.started_at,
            "left": round(100 * (s.started_at - start) / span, 2),
            "width": max(round(100 * (last - s.started_at) / span, 2), 0.6),
            "inputs": inputs or None,
        })
    return out


# -- playground forms from JSON Schema ---------------------------------------------------


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if not isinstance(kind, str):
        if "enum" in schema:
            return "string"
        return "json"
    return kind


def form_fields(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One form field per top-level property of a tool's input schema; anything nested
    (objects, arrays) is a JSON text area."""
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    fields: list[dict[str, Any]] = []
    for name, prop in props.items():
        if not isinstance(prop, Mapping):
            prop = {}
        kind = _kind(prop)
        widget = {"integer": "number", "number": "number", "boolean": "boolean",
                  "object": "json", "array": "json", "json": "json"}.get(kind, "text")
        enum = prop.get("enum")
        if isinstance(enum, list) and enum:
            widget = "enum"
        fields.append({
            "name": str(name), "kind": kind, "widget": widget, "required": name in required,
            "description": str(prop.get("description") or prop.get("title") or ""),
            "enum": [str(e) for e in enum] if isinstance(enum, list) else [],
            "default": prop.get("default"),
            "step": "1" if kind == "integer" else "any",
            "placeholder": "[ ]" if kind == "array" else ("{ }" if widget == "json" else ""),
        })
    return fields


def build_arguments(fields: list[dict[str, Any]], values: Mapping[str, str]) -> dict[str, Any]:
    """Form values as arguments of the schema's types. A value that does not convert is
    passed as typed, so the tool's validation answers as it would answer a model."""
    out: dict[str, Any] = {}
    for f in fields:
        text = values.get(f["name"], "")
        if text.strip() == "":
            continue  # left empty: not given
        out[f["name"]] = _convert(f["kind"], text)
    return out


def _convert(kind: str, text: str) -> Any:
    value = text.strip()
    with contextlib.suppress(ValueError):
        if kind == "integer":
            return int(value)
        if kind == "number":
            number = float(value)
            return number if math.isfinite(number) else text
        if kind == "boolean" and value in ("true", "false"):
            return value == "true"
    if kind in ("object", "array", "json"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return text
    return text if kind == "string" else value
