"""The sandbox APIs started for one test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from patchwire.sandbox import ChaosSettings, Sandbox

__all__ = ["sandbox"]


@asynccontextmanager
async def sandbox(
    *,
    seed: int = 0,
    chaos: ChaosSettings | None = None,
    credentials: Mapping[str, Mapping[str, str]] | None = None,
) -> AsyncIterator[str]:
    """The four sandbox APIs (shop, helpdesk, calendar, payments) on a free port of
    127.0.0.1 for the block; yields the base URL (``http://127.0.0.1:PORT``; each API
    under ``/shop``, ``/helpdesk``...). ``credentials`` overrides what an API accepts
    (defaults: ``SANDBOX_CREDENTIALS``). For chaos switched on mid-test, the request
    counters or webhooks, use :class:`~patchwire.sandbox.Sandbox` itself."""
    async with Sandbox(seed=seed, chaos=chaos, credentials=credentials) as running:
        yield running.url
