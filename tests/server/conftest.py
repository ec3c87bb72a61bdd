from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.config import Settings
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.cli.leaks import new_canary
from tests.helpers import local_settings
from tests.server.live import serving


@dataclass
class Api:
    """The REST API served by uvicorn on loopback, with an aiohttp client for it."""

    url: str
    http: aiohttp.ClientSession
    sandbox: Sandbox
    canary: str
    settings: Settings

    def at(self, path: str) -> str:
        return self.url + path


@pytest.fixture
def canary() -> str:
    return new_canary("shopkey")


@pytest.fixture
async def sandbox(canary: str) -> AsyncIterator[Sandbox]:
    """The sandbox APIs on a free loopback port; the shop accepts only the canary key."""
    async with Sandbox(credentials={"shop": {"api_key": canary}}) as running:
        yield running


@pytest.fixture
async def api(store_url: str, tmp_path: Path, sandbox: Sandbox,
              canary: str) -> AsyncIterator[Api]:
    """``create_app(Patchwire(settings))`` on SQLite and PostgreSQL, with connection ``acme``."""
    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme",
                                   {"sandbox_url": sandbox.url, "api_key": canary})
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Api(url, http, sandbox, canary, settings)
