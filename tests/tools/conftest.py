"""Fixtures for tool tests: a Patchwire with a connection to each sandbox API, and the
MCP environment (a store with connection ``acme`` and a pending order) with the server
app on loopback, for the SDK's client and the external MCP tools alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.mcp import Env
from tests.support.sandboxes import connected
from tests.support.servers import serving
from tests.support.settings import local_settings


@pytest.fixture
async def pw(tmp_path: Path, sandbox: Sandbox, canary: str) -> AsyncIterator[Patchwire]:
    """Patchwire on SQLite in ``tmp_path`` with one connection per sandbox API."""
    async with connected(tmp_path / "home", sandbox, canary) as opened:
        yield opened


@pytest.fixture
async def env(tmp_path: Path, sandbox: Sandbox, canary: str) -> AsyncIterator[Env]:
    settings = local_settings(tmp_path / "home")
    async with Patchwire(settings) as pw:
        await pw.add_connection("shop", "acme", {"sandbox_url": sandbox.url, "api_key": canary})
        order = await pw.call("shop.create_order", {
            "customer_id": "cus_0009", "line_items": [{"product_id": "prod_023", "quantity": 1}]},
            connection="acme")
        assert order["status"] == "pending"
        yield Env(settings, pw, sandbox, canary, str(order["id"]))


@pytest.fixture
async def mcp_url(env: Env) -> AsyncIterator[str]:
    env.server = Patchwire(env.settings)
    async with serving(create_app(env.server)) as url:
        yield f"{url}/mcp"
