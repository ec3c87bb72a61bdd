"""REST routes for connections (``/api/v1/connections``): listing them without their
secrets (``read``), and proving one's credentials with the connector's test call (``run``:
it calls the upstream)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from patchwire.access import end_user_of, requires
from patchwire.errors import UnknownConnection

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["ConnectionTestResponse", "connections_router"]


class ConnectionTestResponse(BaseModel):
    ok: bool = Field(description="the credentials were accepted (a refusal is a problem)")
    action: str = Field(description="the connector's test call, e.g. shop.list_orders")
    status: int = Field(description="the upstream's HTTP status")
    elapsed_ms: float


def connections_router(pw: Patchwire) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/connections", dependencies=[requires("read", end_users=True)])
    async def list_connections(request: Request, connector: str | None = None,
                               end_user: str | None = None) -> list[dict[str, Any]]:
        acting = end_user_of(request)
        if acting is not None:
            if end_user not in (None, acting):
                return []  # another end user's: nothing, as if there were none
            end_user = acting
        return [i.to_dict() for i in await pw.list_connections(connector, end_user)]

    @router.get("/connections/{name}", dependencies=[requires("read", end_users=True)])
    async def get_connection(name: str, request: Request) -> dict[str, Any]:
        info = await pw.get_connection(name)
        acting = end_user_of(request)
        if acting is not None and info.end_user != acting:
            raise UnknownConnection(f"no connection named {name!r}")
        return info.to_dict()

    @router.post("/connections/{name}/test", response_model=ConnectionTestResponse,
                 dependencies=[requires("run")])
    async def test_connection(name: str) -> ConnectionTestResponse:
        # one cheap call proving the credentials; a refusal is the call's problem (424 with
        # the upstream's status and a redacted excerpt), never the credentials
        tested = await pw.test_connection(name)
        return ConnectionTestResponse(ok=True, action=tested.action, status=tested.status,
                                      elapsed_ms=round(tested.latency_ms, 1))

    return router
