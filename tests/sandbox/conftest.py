from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import aiohttp
import pytest

from patchwire.sandbox import Sandbox

ANCHOR = date(2025, 3, 5)  # a Wednesday; makes the calendar's seeded bookings date-independent


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(seed=0, calendar_anchor=ANCHOR) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
