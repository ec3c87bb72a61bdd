"""Fixtures for tool tests: the sandbox APIs and a Patchwire with a connection to each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from tests.cli.leaks import new_canary
from tests.helpers import local_settings

#: connection name per sandbox API in ``pw``
CONNECTIONS = {"shop": "acme", "helpdesk": "support", "calendar": "agenda",
               "payments": "billing"}


@pytest.fixture
def canary() -> str:
    """The shop API key for this test: unique, so finding it anywhere is a leak."""
    return new_canary("shopkey")


@pytest.fixture
async def sandbox(canary: str) -> AsyncIterator[Sandbox]:
    async with Sandbox(credentials={"shop": {"api_key": canary}}) as running:
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


@pytest.fixture
async def pw(tmp_path: Path, sandbox: Sandbox, canary: str) -> AsyncIterator[Patchwire]:
    """Patchwire on SQLite in ``tmp_path`` with one connection per sandbox API."""
    async with connected(tmp_path / "home", sandbox, canary) as opened:
        yield opened
