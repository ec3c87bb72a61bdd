"""What every sandbox API module provides to the composed app."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CREDENTIAL_KEY = web.RequestKey("sandbox_credential", str)
"""The raw credential the request authenticated with; scopes per-caller state."""


class Route(NamedTuple):
    method: str
    path: str
    """Relative to the API prefix, e.g. ``/orders/{order_id}``."""
    handler: Handler


class SandboxApi(abc.ABC):
    """One fake upstream: in-memory state, re-seedable, and its routes."""

    name: str

    def __init__(self, seed: int) -> None:
        self.reset(seed)

    @abc.abstractmethod
    def reset(self, seed: int) -> None:
        """Replaces all state with the deterministic data for ``seed``."""

    @abc.abstractmethod
    def routes(self) -> list[Route]: ...
