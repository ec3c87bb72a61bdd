"""The connections API on loopback (SQLite and PostgreSQL): an operator's connection
``acme`` and two end users' shop connections (``u1``: ``u1-shop``; ``u2``: ``u2-shop``),
all with the test's canary as their key, against the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.api import Api
from tests.support.servers import serving
from tests.support.settings import local_settings


@pytest.fixture
async def api(store_url: str, tmp_path: Path, sandbox: Sandbox,
              canary: str) -> AsyncIterator[Api]:
    settings = local_settings(tmp_path / "home", database_url=store_url)
    async with Patchwire(settings) as setup:
        await setup.add_connection("shop", "acme",
                                   {"sandbox_url": sandbox.url, "api_key": canary})
        for user in ("u1", "u2"):
            await setup.add_connection("shop", f"{user}-shop",
                                       {"sandbox_url": sandbox.url, "api_key": canary},
                                       end_user=user)
    async with (
        serving(create_app(Patchwire(settings))) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Api(url, http, sandbox, canary, settings)

