"""The sandbox the crash tests use: charge requests counted per Idempotency-Key."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from aiohttp import web

from patchwire.sandbox import Sandbox
from patchwire.sandbox._payments import PaymentsApi


@asynccontextmanager
async def counting_sandbox(*, seed: int, jitter_ms: float,
                           ) -> AsyncIterator[tuple[Sandbox, Counter[str]]]:
    """A running sandbox and the charge requests it received, per Idempotency-Key. Calls
    to payments and helpdesk take 20 ms plus up to ``jitter_ms``: latency is applied
    before the handler, so a killed engine leaves requests that still take effect, and
    responses that never reach a checkpoint."""
    box = Sandbox(seed=seed)
    payments = cast(PaymentsApi, box.state.apis["payments"])
    requests: Counter[str] = Counter()
    create = payments.create_charge

    async def counted(request: web.Request) -> web.StreamResponse:
        requests[request.headers.get("Idempotency-Key", "")] += 1
        return await create(request)

    # routes are bound when the app is built (at start), from the instance's attribute
    payments.create_charge = counted  # type: ignore[method-assign]
    for api in ("payments", "helpdesk"):
        box.set_chaos(api, latency_ms=20, jitter_ms=jitter_ms)
    async with box:
        yield box, requests
