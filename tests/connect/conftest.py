"""Fixtures for connect links: a served app whose public URL is where it listens, with the
sandbox shop (API key) and the sandbox's OAuth2 server as connectors (tests/support/connect.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry
from patchwire.sandbox import Sandbox
from patchwire.server import create_app
from tests.support.connect import Site, oauth_connector, shop_connector
from tests.support.servers import serving
from tests.support.settings import free_port, local_settings


@pytest.fixture
async def site(store_url: str, tmp_path: Path, sandbox: Sandbox,
               canary: str) -> AsyncIterator[Site]:
    port = free_port()
    settings = local_settings(tmp_path / "home", database_url=store_url,
                              public_url=f"http://127.0.0.1:{port}")
    registry = ConnectorRegistry([shop_connector(sandbox), oauth_connector(sandbox)])
    pw = Patchwire(settings, connectors=registry)
    async with (
        serving(create_app(pw), port) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):
        yield Site(url, pw, http, sandbox, canary, store_url)
