"""REST routes for the definitions a server runs with (``/api/v1/definitions``): what is in
force, and reloading them from their files — what ``SIGHUP`` does (``definitions.py``).

Reloading needs the ``admin`` scope; reading them, ``read``. New files that do not load are
a 422 problem listing every problem with its file and line, and the definitions in force
stay as they were.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from patchwire.access import requires
from patchwire.definitions import LiveDefinitions
from patchwire.errors import SpecError

__all__ = ["definitions_router"]


def definitions_router(live: LiveDefinitions) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/definitions", dependencies=[requires("read")])
    async def current() -> dict[str, Any]:
        return live.current()

    @router.post("/definitions/reload", dependencies=[requires("admin")])
    async def reload() -> dict[str, Any]:
        try:
            changes = await live.reload()
        except SpecError as exc:  # the app's 422 problem lists each problem (server/_app.py)
            exc.add_note("the definitions in force are unchanged")
            raise
        return {"changed": changes.any, "summary": changes.summary(),
                "changes": changes.to_dict(), "definitions": live.current()}

    return router
