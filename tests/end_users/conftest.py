from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire.sandbox import Sandbox
from tests.support.api import Api
from tests.support.end_users import serving_two_end_users


@pytest.fixture
async def api(store_url: str, tmp_path: Path, sandbox: Sandbox,
              canary: str) -> AsyncIterator[Api]:
    """``create_app(Patchwire(settings))`` on SQLite and PostgreSQL, with an operator's
    connection ``acme`` and two end users' shop connections (``u1``: ``u1-shop``; ``u2``:
    ``u2-shop``), each with its own key."""
    async with serving_two_end_users(store_url, tmp_path, sandbox, canary) as served:
        yield served
