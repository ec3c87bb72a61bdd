"""The approvals page: the queue by status, and deciding one (who and why are kept).

Who decided is the signed-in identity, never typed: ``key:<id> (<name>)`` for the API key
the dashboard was opened with, ``local`` on a loopback server without keys
(``access_of(request).identity``). A name field anyone could fill was no record of who
approved a payment."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from patchwire.access import access_of, requires
from patchwire.errors import ApprovalStateError, LookupFailed

from ._render import Pages, is_partial
from ._services import DashboardServices

__all__ = ["APPROVAL_STATUSES", "approvals_router"]

APPROVAL_STATUSES = ("pending", "approved", "denied", "expired", "used", "all")
#: the longest ``decided_by`` the store keeps (a key's name alone may be 200 characters)
MAX_DECIDER = 200


def decider(request: Request) -> str:
    """Who decides: the request's identity, a long key name cut (its id is kept whole)."""
    who = access_of(request).identity
    return who if len(who) <= MAX_DECIDER else who[:MAX_DECIDER - 2] + "…)"


def approvals_router(services: DashboardServices, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/approvals", dependencies=[requires("read")], response_class=HTMLResponse)
    async def approvals(request: Request, status: str = "pending") -> HTMLResponse:
        status = status if status in APPROVAL_STATUSES else "pending"
        found = await services.tools().list_approvals(
            status=None if status == "all" else status, limit=200)
        return pages.page("approvals.html", request, approvals=found, status=status,
                          statuses=APPROVAL_STATUSES, identity=decider(request),
                          now_dt=datetime.now(UTC))

    async def decide(request: Request, approval_id: str, approved: bool) -> Response:
        form = await request.form()
        reason = str(form.get("reason") or "").strip()[:2000] or None
        who = decider(request)
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
            return pages.page("_approval.html", request, a=record, notice=notice,
                              identity=who, now_dt=datetime.now(UTC))
        return RedirectResponse("/approvals", status_code=303)

    @router.post("/approvals/{approval_id}/approve", dependencies=[requires("approve")])
    async def approve(request: Request, approval_id: str) -> Response:
        return await decide(request, approval_id, approved=True)

    @router.post("/approvals/{approval_id}/deny", dependencies=[requires("approve")])
    async def deny(request: Request, approval_id: str) -> Response:
        return await decide(request, approval_id, approved=False)

    return router
