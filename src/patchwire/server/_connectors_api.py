"""REST routes for connectors (``/api/v1/connectors``): what the loaded connector specs
offer. Reading needs the ``read`` scope."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from patchwire.access import requires

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["connectors_router"]


def connectors_router(pw: Patchwire) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/connectors", dependencies=[requires("read")])
    async def list_connectors() -> list[dict[str, Any]]:
        return [{"name": s.name, "title": s.title, "description": s.description,
                 "auth": s.auth.type, "actions": sorted(s.actions)} for s in pw.connectors]

    @router.get("/connectors/{name}", dependencies=[requires("read")])
    async def get_connector(name: str) -> dict[str, Any]:
        return pw.connectors.get(name).model_dump(by_alias=True, mode="json",
                                                   exclude_defaults=True)

    return router
