"""The runs pages: the list (filters, a cursor for older pages, live rows), a run with its
timeline, and retrying or cancelling it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from patchwire.access import requires
from patchwire.errors import LookupFailed, RunStateError
from patchwire.flows import FINISHED, RunRecord, StepRecord

from ._render import Pages, is_partial
from ._services import DashboardServices

__all__ = ["PAGE", "RUN_STATUSES", "runs_router", "step_specs", "timeline"]

#: runs per page of the runs list
PAGE = 50
RUN_STATUSES = ("queued", "running", "waiting", "succeeded", "failed", "cancelled")


def _epoch(text: str | None) -> float | None:
    """A ``datetime-local`` (or ISO) value, taken as UTC unless it says otherwise."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def run_filters(flow: str | None, status: str | None, since: str | None,
                until: str | None) -> dict[str, str]:
    found = {"flow": flow or "", "status": status if status in RUN_STATUSES else "",
             "since": since or "", "until": until or ""}
    return {k: v for k, v in found.items() if v}


def runs_router(services: DashboardServices, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    engine = services.engine

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

    @router.get("/runs", dependencies=[requires("read")], response_class=HTMLResponse)
    async def runs(request: Request, flow: str | None = None, status: str | None = None,
                   since: str | None = None, until: str | None = None,
                   before: str | None = None) -> HTMLResponse:
        filters = run_filters(flow, status, since, until)
        context = await runs_context(filters, before)
        if is_partial(request):
            return pages.page("_runs_table.html", request, **context)
        return pages.page("runs.html", request, flows=sorted(f.id for f in engine.flows()),
                          statuses=RUN_STATUSES, **context)

    @router.get("/runs/rows", dependencies=[requires("read")], response_class=HTMLResponse)
    async def runs_rows(request: Request, flow: str | None = None,
                        status: str | None = None, since: str | None = None,
                        until: str | None = None, before: str | None = None) -> HTMLResponse:
        context = await runs_context(run_filters(flow, status, since, until), before)
        return pages.page("_runs_table.html", request, **context)

    async def run_context(run_id: str) -> dict[str, Any]:
        record = await engine.get_run(run_id)
        steps = await engine.steps(run_id)
        definition = await services.reports().flow_definition(record.flow_id,
                                                               record.flow_version)
        return {"run": record, "timeline": timeline(record, steps, step_specs(definition)),
                "finished": record.status in FINISHED,
                "failed_step": (record.error or {}).get("step")
                if isinstance(record.error, Mapping) else None}

    @router.get("/runs/{run_id}", dependencies=[requires("read")],
                response_class=HTMLResponse)
    async def run_detail(request: Request, run_id: str) -> HTMLResponse:
        try:
            context = await run_context(run_id)
        except LookupFailed as exc:
            return pages.not_found(request, exc)
        if is_partial(request):
            return pages.page("_run_body.html", request, **context)
        return pages.page("run.html", request, **context)

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
            return pages.not_found(request, exc)
        except RunStateError as exc:
            notice = str(exc)
        if is_partial(request):
            context = await run_context(run_id)
            return pages.page("_run_body.html", request, notice=notice, **context)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @router.post("/runs/{run_id}/retry", dependencies=[requires("run")])
    async def retry_run(request: Request, run_id: str) -> Response:
        return await run_action(request, run_id, "retry")

    @router.post("/runs/{run_id}/cancel", dependencies=[requires("run")])
    async def cancel_run(request: Request, run_id: str) -> Response:
        return await run_action(request, run_id, "cancel")

    return router


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


def step_specs(definition: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Step id -> its declaration, nested steps included (a step key such as
    ``each[3].lookup`` ends in the id of the declaration it ran)."""
    found: dict[str, dict[str, Any]] = {}

    def walk(steps: Iterable[Any]) -> None:
        for step in steps:
            if not isinstance(step, Mapping):
                continue
            if isinstance(step.get("id"), str):
                found.setdefault(step["id"], dict(step))
            for key in ("then", "else", "do", "default"):
                child = step.get(key)
                if isinstance(child, list):
                    walk(child)
            # switch cases and parallel branches: name -> steps; on_error: its step lists
            for key in ("cases", "parallel", "on_error"):
                child = step.get(key)
                if isinstance(child, Mapping):
                    for item in child.values():
                        if isinstance(item, list):
                            walk(item)

    walk((definition or {}).get("steps") or [])
    return found
