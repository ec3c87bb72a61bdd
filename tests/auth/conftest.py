"""Fixtures of the auth tests: an HTTP core that may reach the loopback token servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from patchwire.http import HttpCore
from tests.support.settings import LOOPBACK


@pytest.fixture
async def http() -> AsyncIterator[HttpCore]:
    core = HttpCore(allow_networks=LOOPBACK)
    yield core
    await core.close()
