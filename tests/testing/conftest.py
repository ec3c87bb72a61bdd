"""A Patchwire with one YAML connector (``orders``) over an HTTP core the test builds: the
way a user tests their own connector with ``patchwire.testing``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from patchwire import Patchwire
from patchwire.connectors import ConnectorRegistry, load_connector_text
from patchwire.http import HttpCore
from tests.support.leaks import new_canary
from tests.support.settings import local_settings

ORDERS = """
name: orders
base_url: "{base_url}"
settings:
  base_url: {}
  api_key: {secret: true}
auth: {type: api_key, in: header, name: X-Api-Key, value: "{api_key}"}
retry: {attempts: ATTEMPTS, backoff_initial: 5, backoff_max: 5}
breaker: {failure_rate: 0.5, min_calls: 4, window: 60, open_for: 30}
actions:
  get_order:
    input:
      type: object
      properties: {order_id: {type: string}, expand: {type: string}}
      required: [order_id]
    request:
      path: /orders/{order_id}
      query: {expand: "{expand}"}
"""

#: where the ``orders`` connection points (a MockTransport answers; nothing is resolved)
BASE_URL = "https://orders.example.com/v1"

Opener = Callable[..., AbstractAsyncContextManager[Patchwire]]


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
