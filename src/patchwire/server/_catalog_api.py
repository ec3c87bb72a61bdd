"""REST routes for the catalog of real-world connectors (``/api/v1/catalog``).

Reading needs the ``read`` scope. Adding one to the deployment (``POST
/api/v1/catalog/{name}/add``) needs ``admin``: it writes the connector's file to the first
connector directory and reloads the definitions, as ``patchwire connector add`` then
``SIGHUP`` would. Only a name the catalog holds is ever turned into a file name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query

from patchwire.access import requires
from patchwire.catalog import CatalogEntry, load_catalog
from patchwire.connectors import ConnectorRegistry
from patchwire.definitions import LiveDefinitions
from patchwire.errors import SpecError

__all__ = ["catalog_router"]

#: the longest search query read (a search box's text, not a document)
MAX_QUERY = 200


def catalog_router(connectors: Callable[[], ConnectorRegistry],
                   live: LiveDefinitions) -> APIRouter:
    """``connectors``: the deployment's connectors in force (to say which are enabled);
    ``live``: the definitions in force, which adding one reloads."""
    router = APIRouter(prefix="/api/v1")

    def row(entry: CatalogEntry) -> dict[str, Any]:
        return {**entry.summary(), "enabled": entry.name in connectors()}

    @router.get("/catalog", dependencies=[requires("read")])
    async def list_catalog(q: str = Query("", max_length=MAX_QUERY),
                           category: str | None = Query(None, max_length=40),
                           limit: int = Query(200, ge=1, le=1000)) -> list[dict[str, Any]]:
        catalog = load_catalog()
        if q.strip():
            hits = catalog.search(q, limit=limit)
            return [{**row(e), "score": score} for e, score in hits
                    if category is None or category in e.categories]
        return [row(e) for e in catalog if category is None or category in e.categories
                ][:limit]

    @router.get("/catalog/{name}", dependencies=[requires("read")])
    async def show(name: str) -> dict[str, Any]:
        entry = load_catalog().get(name)
        return {**entry.details(), "enabled": entry.name in connectors()}

    @router.post("/catalog/{name}/add", dependencies=[requires("admin")])
    async def add_connector(name: str, force: bool = False) -> dict[str, Any]:
        entry = load_catalog().get(name)  # an unknown name: 404 before anything is written
        try:
            changes = await live.add_from_catalog(entry.name, force=force)
        except SpecError as exc:  # another file does not load: the app's 422 lists it
            exc.add_note(f"{entry.name}.yaml was written; the definitions in force are "
                         f"unchanged until every file loads")
            raise
        return {"name": entry.name, "enabled": entry.name in connectors(),
                "summary": changes.summary(), "changes": changes.to_dict()}

    return router
