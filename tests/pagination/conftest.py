from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.sandbox import SANDBOX_CREDENTIALS, Sandbox
from tests.support.sandboxes import seeded_sandbox
from tests.support.settings import local_settings


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with seeded_sandbox() as running:
        yield running


@pytest.fixture
async def pw(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Patchwire]:
    """Patchwire with the built-in connectors and one connection per sandbox API, named
    after the API."""
    settings = local_settings(tmp_path / "home")
    async with Patchwire(settings) as opened:
        for api, values in SANDBOX_CREDENTIALS.items():
            await opened.add_connection(api, api, {"sandbox_url": sandbox.url, **values})
        yield opened


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
