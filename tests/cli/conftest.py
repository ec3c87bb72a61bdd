from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire.sandbox import Sandbox
from tests.cli.clirun import Cli
from tests.cli.leaks import new_canary


@pytest.fixture
def canary() -> str:
    """The shop API key for this test: unique, so finding it anywhere is a leak."""
    return new_canary("shopkey")


@pytest.fixture
async def sandbox(canary: str) -> AsyncIterator[Sandbox]:
    """The sandbox APIs on a free loopback port; the shop accepts only the canary key."""
    async with Sandbox(credentials={"shop": {"api_key": canary}}) as running:
        yield running


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The ``patchwire`` command with its home, store and connectors under ``tmp_path``."""
    return Cli(tmp_path)
