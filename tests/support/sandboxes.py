"""The sandbox APIs for tests (a pytest plugin: the ``canary`` and ``sandbox`` fixtures).

The shop accepts only ``canary``, a key unique to the test, so finding it anywhere a user
or an attacker can read is a leak. A test directory or module that needs the sandbox set
up otherwise (a seed, a fake OAuth clock, counted requests) defines its own ``sandbox``.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web

from patchwire import Patchwire
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from patchwire.sandbox._payments import PaymentsApi
from tests.support.leaks import new_canary
from tests.support.settings import local_settings

#: a Wednesday; makes the calendar's seeded bookings date-independent
ANCHOR = date(2025, 3, 5)

#: connection name per sandbox API in ``connected``
CONNECTIONS = {"shop": "acme", "helpdesk": "support", "calendar": "agenda",
               "payments": "billing"}


@pytest.fixture
def canary() -> str:
    """The shop API key for this test: unique, so finding it anywhere is a leak."""
    return new_canary("shopkey")


@pytest.fixture
async def sandbox(canary: str) -> AsyncIterator[Sandbox]:
    """The sandbox APIs on a free loopback port; the shop accepts only the canary key."""
    async with Sandbox(credentials={"shop": {"api_key": canary}}) as running:
        yield running



@asynccontextmanager
async def seeded_sandbox(**options: Any) -> AsyncIterator[Sandbox]:
    """The sandbox with seed 0 and the calendar anchored at ``ANCHOR``: the same data on
    every run, whatever the date."""
    async with Sandbox(seed=0, calendar_anchor=ANCHOR, **options) as running:
        yield running

@asynccontextmanager
async def connected(home: Path, sandbox: Sandbox, canary: str,
                    database_url: str | None = None) -> AsyncIterator[Patchwire]:
    """Patchwire with one connection per sandbox API (names in CONNECTIONS)."""
    overrides = {"database_url": database_url} if database_url else {}
    async with Patchwire(local_settings(home, **overrides)) as opened:
        for api, name in CONNECTIONS.items():
            values = {"sandbox_url": sandbox.url, **SANDBOX_CREDENTIALS[api]}
            if api == "shop":
                values["api_key"] = canary
            await opened.add_connection(api, name, values)
        yield opened


def add_order(sandbox: Sandbox, order_id: str) -> None:
    """A copy of the shop's order 42 under ``order_id``."""
    orders: dict[str, Any] = sandbox.state.apis["shop"].orders  # type: ignore[attr-defined]
    orders[order_id] = {**copy.deepcopy(orders["42"]), "id": order_id}


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
