from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from patchwire.sandbox import Sandbox
from tests.support.sandboxes import seeded_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with seeded_sandbox() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
