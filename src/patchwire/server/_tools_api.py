"""REST routes for chatbot tools: the catalog in provider formats, calling a tool (the
playground's path), the tool audit and the approvals queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from patchwire.access import requires
from patchwire.store.tools import ToolRepository
from patchwire.tools import ToolFilter, ToolInvoker

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["tools_router"]


class ToolCallRequest(BaseModel):
    arguments: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(None, max_length=200)


class Verdict(BaseModel):
    reason: str | None = Field(None, max_length=2000)
    by: str | None = Field(None, max_length=200, description="who decides (default: api)")


def tools_router(pw: Patchwire, invoker: ToolInvoker | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    invoker = invoker or ToolInvoker(pw)
    engine = invoker.engine

    def repo() -> ToolRepository:
        return ToolRepository(pw.store)

    @router.get("/tools", dependencies=[requires("read")])
    async def list_tools(
        connection: Annotated[list[str] | None, Query()] = None,
        connector: Annotated[list[str] | None, Query()] = None,
        tag: Annotated[list[str] | None, Query()] = None,
        read_only: bool = False,
        format: Literal["patchwire", "openai", "openai-responses", "anthropic", "mcp"] = (
            "patchwire"),
    ) -> list[dict[str, Any]]:
        flt = ToolFilter(connectors=frozenset(connector) if connector else None,
                         tags=frozenset(tag) if tag else None, read_only=read_only)
        catalog = await ToolInvoker(pw, connections=connection, filter=flt,
                                    engine=engine).catalog()
        if format != "patchwire":
            from patchwire.tools import export_tools

            return export_tools(catalog, format)
        return [{"name": t.name, "target": t.target, "connection": t.connection,
                 "description": t.description, "input_schema": t.input_schema,
                 "read_only": t.read_only, "destructive": t.destructive,
                 "idempotent": t.idempotent, "confirm": t.confirm} for t in catalog]

    @router.post("/tools/{name}/call", dependencies=[requires("run")])
    async def call_tool(name: str, body: ToolCallRequest) -> dict[str, Any]:
        result = await invoker.invoke(name, body.arguments, session_id=body.session_id)
        return {"status": result.status, "is_error": result.is_error, "text": result.text,
                "data": result.data, "approval_id": result.approval_id,
                "truncated": result.truncated}

    @router.get("/tool-calls", dependencies=[requires("read")])
    async def list_tool_calls(session_id: str | None = None, tool: str | None = None,
                              invalid: bool | None = None,
                              limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        found = await invoker.tool_calls(session_id=session_id, tool=tool,
                                             validation_failed=invalid, limit=limit)
        return [r.to_dict() for r in found]

    @router.get("/approvals", dependencies=[requires("read")])
    async def list_approvals(
        status: Literal["pending", "approved", "denied", "used", "expired", "all"] = "pending",
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        found = await repo().list_approvals(status=None if status == "all" else status,
                                            limit=limit)
        return [a.to_dict() for a in found]

    @router.get("/approvals/{approval_id}", dependencies=[requires("read")])
    async def get_approval(approval_id: str) -> dict[str, Any]:
        return (await repo().get_approval(approval_id)).to_dict()

    @router.post("/approvals/{approval_id}/approve", dependencies=[requires("approve")])
    async def approve(approval_id: str, body: Verdict) -> dict[str, Any]:
        rec = await repo().decide_approval(approval_id, approved=True,
                                           decided_by=f"api:{body.by}" if body.by else "api",
                                           reason=body.reason)
        return rec.to_dict()

    @router.post("/approvals/{approval_id}/deny", dependencies=[requires("approve")])
    async def deny(approval_id: str, body: Verdict) -> dict[str, Any]:
        rec = await repo().decide_approval(approval_id, approved=False,
                                           decided_by=f"api:{body.by}" if body.by else "api",
                                           reason=body.reason)
        return rec.to_dict()

    return router
