"""The tool pages: the audit of tool calls (invalid ones, and whether the model retried
after reading the error) and the playground (a form per tool, called as a model would)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from patchwire.access import requires
from patchwire.store.tools import ToolCallRecord

from ._forms import build_arguments, form_fields
from ._render import Pages, is_partial
from ._services import DashboardServices

__all__ = ["PLAYGROUND_SESSION", "RetriedCall", "retried_calls", "tools_router"]

#: the session id the playground's calls carry in the tool audit
PLAYGROUND_SESSION = "dashboard-playground"


@dataclass(frozen=True)
class RetriedCall:
    """A tool call whose arguments failed validation, and what the model did next."""

    call: ToolCallRecord
    retry: ToolCallRecord | None


def retried_calls(calls: Sequence[ToolCallRecord]) -> dict[str, ToolCallRecord]:
    """For each invalid_arguments call (by id): the model's next call of the same tool in
    the same session, if it made one among ``calls`` — a retry after reading the error."""
    ordered = sorted(calls, key=lambda c: (c.started_at, c.id))
    out: dict[str, ToolCallRecord] = {}
    for i, call in enumerate(ordered):
        if not call.validation_failed or call.session_id is None:
            continue
        for later in ordered[i + 1:]:
            if later.session_id == call.session_id and later.tool == call.tool:
                out[call.id] = later
                break
    return out


def tools_router(services: DashboardServices, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    invoker = services.invoker

    @router.get("/tool-audit", dependencies=[requires("read")], response_class=HTMLResponse)
    async def tool_audit(request: Request, tool: str | None = None,
                         session: str | None = None, invalid: str | None = None
                         ) -> HTMLResponse:
        only_invalid = invalid in ("1", "true", "on")
        calls = await invoker.tool_calls(tool=tool or None, session_id=session or None,
                                         limit=300)
        retried = retried_calls(calls)
        shown = [c for c in calls if c.validation_failed] if only_invalid else calls
        counts = await services.tools().tool_call_counts()
        invalid_total = sum(1 for c in calls if c.validation_failed)
        return pages.page("tool_audit.html", request, calls=shown[:200], retried=retried,
                          counts=counts, tool=tool or "", session=session or "",
                          invalid=only_invalid, invalid_total=invalid_total,
                          retried_total=len(retried),
                          retried_ok=sum(1 for r in retried.values() if r.status == "ok"))

    @router.get("/playground", dependencies=[requires("read")], response_class=HTMLResponse)
    async def playground(request: Request, tool: str | None = None) -> HTMLResponse:
        catalog = await invoker.catalog()
        chosen = catalog.find(tool) if tool else None
        return pages.page("playground.html", request, tools=list(catalog), tool=chosen,
                          fields=form_fields(chosen.input_schema) if chosen else [],
                          values={}, raw="", result=None, asked=tool or "")

    @router.post("/playground/{name}", dependencies=[requires("run")])
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
        if is_partial(request):
            return pages.page("_tool_result.html", request, result=result)
        return pages.page("playground.html", request, tools=list(catalog), tool=chosen,
                          fields=fields, values=values, raw=raw, result=result, asked=name)

    return router
