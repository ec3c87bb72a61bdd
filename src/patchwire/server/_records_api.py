"""REST routes for syncs and synced records: ``/api/v1/syncs`` and ``/api/v1/records``.

Records are answered from the store only (never the upstream); pages use an opaque keyset
cursor, so a page stays correct while syncs keep writing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from patchwire.access import requires
from patchwire.errors import ConfigError
from patchwire.sync import SyncEngine
from patchwire.sync.spec import UnknownRecord

__all__ = ["records_router"]


class SyncRunRequest(BaseModel):
    connection: str | None = Field(None, description="one connection (default: every one)")
    full: bool = Field(False, description="reconcile: a full listing that finds deletes")


def records_router(engine: SyncEngine) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["sync"])

    @router.get("/syncs", dependencies=[requires("read")])
    async def list_syncs() -> list[dict[str, Any]]:
        """Every sync with its state per connection."""
        by_sync: dict[str, list[dict[str, Any]]] = {}
        for status in await engine.status():
            by_sync.setdefault(status.sync, []).append(status.to_dict())
        return [{**s.summary(), "status": by_sync.get(s.id, [])} for s in engine.syncs()]

    @router.get("/syncs/{sync_id}", dependencies=[requires("read")])
    async def get_sync(sync_id: str) -> dict[str, Any]:
        spec = engine.sync(sync_id)
        return {**spec.summary(),
                "status": [s.to_dict() for s in await engine.status() if s.sync == sync_id]}

    @router.post("/syncs/{sync_id}/run", dependencies=[requires("admin")])
    async def run_sync(sync_id: str, body: SyncRunRequest) -> list[dict[str, Any]]:
        """Poll (or reconcile) now and answer with what changed."""
        outcomes = await engine.run(sync_id, connection=body.connection, full=body.full)
        return [o.to_dict() for o in outcomes]

    @router.get("/records", dependencies=[requires("read")])
    async def list_records(
        model: Annotated[str, Query(min_length=1, max_length=100)],
        connection: str | None = None,
        q: Annotated[str | None, Query(max_length=500, description="words, all present")]
        = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        include_deleted: bool = False,
    ) -> dict[str, Any]:
        try:
            records, next_cursor = await engine.records.search(
                model, connection=connection, query=q, limit=limit, after=cursor,
                include_deleted=include_deleted)
        except ValueError as exc:
            raise ConfigError(f"cursor: {exc}") from None
        return {"data": [r.to_dict() for r in records], "next_cursor": next_cursor}

    @router.get("/records/{model}/{connection}/{record_id}", dependencies=[requires("read")])
    async def get_record(model: str, connection: str, record_id: str) -> dict[str, Any]:
        record = await engine.records.get(model, connection, record_id)
        if record is None:
            raise UnknownRecord(f"no {model} {record_id!r} synced for connection "
                              f"{connection!r}")
        return record.to_dict()

    return router
