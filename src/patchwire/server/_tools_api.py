"""REST routes for chatbot tools: the catalog in provider formats, calling a tool (the
playground's path), the tool audit and the approvals queue.

Every route serves end users too: with an end-user token the catalog is that end user's
(their connections' tools, plus every other connector's, which answer with a connect
link), calls act for them, and the audit and approvals are theirs only — another end
user's approval id answers 404 as if it did not exist. A decision is recorded under the
identity that made it (the key, the end user, or ``local``), not a name the caller types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from patchwire.access import access_of, end_user_of, requires
from patchwire.errors import UnknownConnection
from patchwire.tools import MAX_QUERY_CHARS, ToolFilter, ToolInvoker, catalog_tool_index, index_for

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["tools_router"]


class ToolCallRequest(BaseModel):
    arguments: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(None, max_length=200)


class Verdict(BaseModel):
    reason: str | None = Field(None, max_length=2000)
    by: str | None = Field(None, max_length=200, deprecated=True, description=(
        "ignored: a decision is recorded under the identity of the key (or end-user "
        "token) that made it"))


def tools_router(pw: Patchwire, invoker: ToolInvoker | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    invoker = invoker or ToolInvoker(pw)
    engine = invoker.engine

    def acting(request: Request) -> ToolInvoker:
        """The invoker for whoever sent ``request``: their end user's, else the app's."""
        end_user = end_user_of(request)
        return invoker.for_end_user(end_user) if end_user is not None else invoker

    @router.get("/tools", dependencies=[requires("read", end_users=True)])
    async def list_tools(
        request: Request,
        connection: Annotated[list[str] | None, Query()] = None,
        connector: Annotated[list[str] | None, Query()] = None,
        tag: Annotated[list[str] | None, Query()] = None,
        read_only: bool = False,
        format: Literal["patchwire", "openai", "openai-responses", "anthropic", "mcp"] = (
            "patchwire"),
    ) -> list[dict[str, Any]]:
        flt = ToolFilter(connectors=frozenset(connector) if connector else None,
                         tags=frozenset(tag) if tag else None, read_only=read_only)
        end_user = end_user_of(request)
        if end_user is None:
            catalog = list(await ToolInvoker(pw, connections=connection, filter=flt,
                                             engine=engine).catalog())
        else:
            catalog = [t for t in await acting(request).catalog() if flt.admits(t)]
            if connection:
                # their own connections only: another's name is unknown to them
                bound = {t.connection for t in catalog}
                for name in connection:
                    if name not in bound:
                        raise UnknownConnection(f"no connection named {name!r}")
                catalog = [t for t in catalog if t.connection in set(connection)]
        if format != "patchwire":
            from patchwire.tools import export_tools

            return export_tools(catalog, format)
        return [{"name": t.name, "target": t.target, "connection": t.connection,
                 "description": t.description, "input_schema": t.input_schema,
                 "read_only": t.read_only, "destructive": t.destructive,
                 "idempotent": t.idempotent, "confirm": t.confirm} for t in catalog]

    @router.get("/tools/search", dependencies=[requires("read", end_users=True)])
    async def search_tools(
        request: Request,
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS,
                                description="what a person wants done, in their words")],
        catalog: Annotated[bool, Query(description="every action of every catalog connector, "
                                       "not the caller's tools")] = False,
        connector: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=50)] = 5,
    ) -> list[dict[str, Any]]:
        """The tools that fit ``q``, best first: ``{name, action, score}`` (an end user's
        token searches their tools only)."""
        if catalog:
            index = catalog_tool_index()
        else:
            acting_invoker = acting(request)
            index = index_for(await acting_invoker.catalog(), pw.connectors)
        return [{"name": h.tool.name, "action": h.tool.target, "score": h.score}
                for h in index.search(q, connector=connector, limit=limit)]

    @router.post("/tools/{name}/call", dependencies=[requires("run", end_users=True)])
    async def call_tool(name: str, body: ToolCallRequest, request: Request) -> dict[str, Any]:
        result = await acting(request).invoke(name, body.arguments,
                                              session_id=body.session_id)
        return {"status": result.status, "is_error": result.is_error, "text": result.text,
                "data": result.data, "approval_id": result.approval_id,
                "truncated": result.truncated}

    @router.get("/tool-calls", dependencies=[requires("read", end_users=True)])
    async def list_tool_calls(request: Request, session_id: str | None = None,
                              tool: str | None = None, invalid: bool | None = None,
                              limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        found = await acting(request).tool_calls(session_id=session_id, tool=tool,
                                                 validation_failed=invalid, limit=limit)
        return [r.to_dict() for r in found]

    @router.get("/approvals", dependencies=[requires("read", end_users=True)])
    async def list_approvals(
        request: Request,
        status: Literal["pending", "approved", "denied", "used", "expired", "all"] = "pending",
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        found = await acting(request).approvals(status=None if status == "all" else status,
                                                limit=limit)
        return [a.to_dict() for a in found]

    @router.get("/approvals/{approval_id}", dependencies=[requires("read", end_users=True)])
    async def get_approval(approval_id: str, request: Request) -> dict[str, Any]:
        return (await acting(request).approval(approval_id)).to_dict()

    @router.post("/approvals/{approval_id}/approve",
                 dependencies=[requires("approve", end_users=True)])
    async def approve(approval_id: str, body: Verdict, request: Request) -> dict[str, Any]:
        rec = await acting(request).decide_approval(
            approval_id, approved=True, decided_by=access_of(request).identity,
            reason=body.reason)
        return rec.to_dict()

    @router.post("/approvals/{approval_id}/deny",
                 dependencies=[requires("approve", end_users=True)])
    async def deny(approval_id: str, body: Verdict, request: Request) -> dict[str, Any]:
        rec = await acting(request).decide_approval(
            approval_id, approved=False, decided_by=access_of(request).identity,
            reason=body.reason)
        return rec.to_dict()

    return router
