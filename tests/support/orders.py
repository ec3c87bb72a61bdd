"""The ``orders`` connector the patchwire.testing tests use: one YAML connector, as a user
would write their own, and the opener the tests' fixture hands out."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from patchwire import Patchwire

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
