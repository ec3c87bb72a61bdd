"""A Patchwire with one YAML connector (``orders``, tests.support.orders) over an HTTP core
the test builds: the way a user tests their own connector with ``patchwire.testing``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.http import HttpCore
from tests.support.leaks import new_canary
from tests.support.orders import BASE_URL, ORDERS, Opener
from tests.support.settings import local_settings


@pytest.fixture
def api_key() -> str:
    """The connection's key: unique to the test, so finding it anywhere is a leak."""
    return new_canary("orderskey")


@pytest.fixture
def open_orders(tmp_path: Path, api_key: str) -> Opener:
    """``async with open_orders(http) as pw``: Patchwire over ``http`` with the connection
    ``acme`` of the ``orders`` connector (``attempts``: its retry policy's); each one in
    a home of its own."""
    homes = iter(range(1_000))

    @asynccontextmanager
    async def opened(http: HttpCore, base_url: str = BASE_URL,
                     attempts: int = 3) -> AsyncIterator[Patchwire]:
        text = ORDERS.replace("ATTEMPTS", str(attempts))
        registry = ConnectorRegistry([load_connector_text(text, "orders.yaml")])
        async with Patchwire(local_settings(tmp_path / f"home{next(homes)}"), connectors=registry,
                             http=http) as pw:
            await pw.add_connection("orders", "acme", {"base_url": base_url,
                                                       "api_key": api_key})
            yield pw

    return opened
