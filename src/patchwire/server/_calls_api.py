"""REST routes for calls: calling an action (``POST /api/v1/actions/{action}/call``,
``run``) and the call log (``GET /api/v1/calls``, ``read``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from patchwire.access import requires

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["CallRequest", "CallResponse", "calls_router"]

#: a caller's request id is passed upstream only if it is plainly an identifier
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class CallRequest(BaseModel):
    connection: str | None = Field(None, description="connection name (default: the only one)")
    input: dict[str, Any] = Field(default_factory=dict, description="the action's arguments")


class CallResponse(BaseModel):
    result: Any
    status: int
    attempts: int
    latency_ms: float
    request_id: str


def calls_router(pw: Patchwire) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.post("/actions/{action}/call", response_model=CallResponse,
                 dependencies=[requires("run")])
    async def call_action(action: str, body: CallRequest, request: Request) -> CallResponse:
        given = request.headers.get("X-Request-Id", "")
        outcome = await pw.execute(action, body.input, connection=body.connection,
                                   request_id=given if _REQUEST_ID.match(given) else None)
        return CallResponse(result=outcome.result, status=outcome.status,
                            attempts=outcome.attempts, latency_ms=outcome.latency_ms,
                            request_id=outcome.request_id)

    @router.get("/calls", dependencies=[requires("read")])
    async def list_calls(action: str | None = None, connection: str | None = None,
                         limit: int = 100) -> list[dict[str, Any]]:
        records = await pw.recent_calls(action=action, connection=connection,
                                        limit=max(1, min(limit, 1000)))
        return [r.to_dict() for r in records]

    return router
