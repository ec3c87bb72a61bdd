"""Routes for operators' tools: ``/healthz`` (public: a load balancer has no key) and the
Prometheus exposition at ``/metrics`` (``read``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import Response

from patchwire.access import PUBLIC, requires
from patchwire.observability import CONTENT_TYPE as METRICS_CONTENT_TYPE
from patchwire.observability import exposition, observe_breakers

if TYPE_CHECKING:
    from patchwire import Patchwire

__all__ = ["ops_router"]


def ops_router(pw: Patchwire) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", dependencies=[requires(PUBLIC)])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/metrics", include_in_schema=False, dependencies=[requires("read")])
    async def metrics() -> Response:
        # breaker states are sampled now rather than pushed on every transition
        observe_breakers(pw.breaker_state(spec.name) for spec in pw.connectors)
        return Response(exposition(), media_type=METRICS_CONTENT_TYPE)

    return router
