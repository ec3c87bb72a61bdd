"""REST routes for the definitions a server runs with (``/api/v1/definitions``): what is in
force, and reloading them from their files — what ``SIGHUP`` does (``definitions.py``).

Reloading needs the ``admin`` scope (no rule of the scope table names it); reading them,
``read``. New files that do not load are a 422 problem listing every problem with its file
and line, and the definitions in force stay as they were.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from patchwire.definitions import LiveDefinitions
from patchwire.errors import SpecError

__all__ = ["definitions_router"]

PROBLEM = "application/problem+json"


def definitions_router(live: LiveDefinitions) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/definitions")
    async def current() -> dict[str, Any]:
        return live.current()

    @router.post("/definitions/reload", response_model=None)
    async def reload() -> dict[str, Any] | JSONResponse:
        try:
            changes = await live.reload()
        except SpecError as exc:
            count = len(exc.problems)
            return JSONResponse({
                "type": f"https://patchwire.dev/errors/{exc.code}",
                "title": "Definitions do not load", "status": 422,
                "detail": f"{count} problem{'s' if count != 1 else ''} found; the "
                          "definitions in force are unchanged",
                "problems": [{"file": p.file, "line": p.line, "path": p.path,
                              "message": p.message, "where": str(p)}
                             for p in exc.problems],
            }, status_code=422, media_type=PROBLEM)
        return {"changed": changes.any, "summary": changes.summary(),
                "changes": changes.to_dict(), "definitions": live.current()}

    return router
