"""The approvals page: the queue by status, and deciding one (who and why are kept)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from patchwire.access import requires
from patchwire.errors import ApprovalStateError, LookupFailed

from ._render import Pages, is_partial
from ._services import DashboardServices

__all__ = ["APPROVAL_STATUSES", "DEFAULT_DECIDER", "NAME_COOKIE", "approvals_router"]

APPROVAL_STATUSES = ("pending", "approved", "denied", "expired", "used", "all")
#: who decided, when the person gave no name
DEFAULT_DECIDER = "dashboard"
NAME_COOKIE = "patchwire_name"


def approvals_router(services: DashboardServices, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/approvals", dependencies=[requires("read")], response_class=HTMLResponse)
    async def approvals(request: Request, status: str = "pending") -> HTMLResponse:
        status = status if status in APPROVAL_STATUSES else "pending"
        found = await services.tools().list_approvals(
            status=None if status == "all" else status, limit=200)
        return pages.page("approvals.html", request, approvals=found, status=status,
                          statuses=APPROVAL_STATUSES,
                          name=request.cookies.get(NAME_COOKIE, ""),
                          now_dt=datetime.now(UTC))

    async def decide(request: Request, approval_id: str, approved: bool) -> Response:
        form = await request.form()
        name = str(form.get("by") or "").strip()[:100]
        reason = str(form.get("reason") or "").strip()[:2000] or None
        who = f"{DEFAULT_DECIDER}:{name}" if name else DEFAULT_DECIDER
        notice = None
        repo = services.tools()
        try:
            record = await repo.decide_approval(approval_id, approved=approved,
                                                decided_by=who, reason=reason)
        except LookupFailed as exc:
            return pages.not_found(request, exc)
        except ApprovalStateError as exc:
            notice = str(exc)
            record = await repo.get_approval(approval_id)
        if is_partial(request):
            response: Response = pages.page("_approval.html", request, a=record,
                                            notice=notice, name=name,
                                            now_dt=datetime.now(UTC))
        else:
            response = RedirectResponse("/approvals", status_code=303)
        if name:  # the next decision is prefilled with the same name
            response.set_cookie(NAME_COOKIE, name, max_age=30 * 86400, samesite="strict",
                                httponly=True)
        return response

    @router.post("/approvals/{approval_id}/approve", dependencies=[requires("approve")])
    async def approve(request: Request, approval_id: str) -> Response:
        return await decide(request, approval_id, approved=True)

    @router.post("/approvals/{approval_id}/deny", dependencies=[requires("approve")])
    async def deny(request: Request, approval_id: str) -> Response:
        return await decide(request, approval_id, approved=False)

    return router
