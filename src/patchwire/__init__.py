"""Patchwire: connect AI chatbots to the APIs they must act on.

    from patchwire import Patchwire

    async with Patchwire() as pw:
        order = await pw.call("shop.get_order", {"order_id": "42"}, connection="acme")
"""

from typing import TYPE_CHECKING, Any

from patchwire.config import Settings, load_settings
from patchwire.errors import (
    AuthError,
    BlockedDestinationError,
    CallError,
    CallTimeoutError,
    ConfigError,
    ConflictError,
    ConnectionExists,
    InputValidationError,
    NotFoundError,
    PatchwireError,
    RateLimitedError,
    SpecError,
    TransportError,
    UnknownAction,
    UnknownConnection,
    UnknownConnector,
    UpstreamError,
    UpstreamValidationError,
)

if TYPE_CHECKING:
    from patchwire._patchwire import ConnectionInfo, Patchwire
    from patchwire.calls import CallOutcome, PaginationError
    from patchwire.connectors import ConnectorRegistry, ConnectorSpec
    from patchwire.flows import FlowEngine

__version__ = "0.1.0"

# The engine (SQLAlchemy, aiohttp, pydantic models) is imported on first use, so that
# commands which never call an API — `patchwire connector import`, `schema` — start fast.
_LAZY = {
    "ConnectionInfo": "patchwire._patchwire",
    "Patchwire": "patchwire._patchwire",
    "CallOutcome": "patchwire.calls",
    "ConnectorRegistry": "patchwire.connectors",
    "ConnectorSpec": "patchwire.connectors",
    "FlowEngine": "patchwire.flows._engine",
    "PaginationError": "patchwire.calls",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'patchwire' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AuthError",
    "BlockedDestinationError",
    "CallError",
    "CallOutcome",
    "CallTimeoutError",
    "ConfigError",
    "ConflictError",
    "ConnectionExists",
    "ConnectionInfo",
    "ConnectorRegistry",
    "ConnectorSpec",
    "FlowEngine",
    "InputValidationError",
    "NotFoundError",
    "PaginationError",
    "Patchwire",
    "PatchwireError",
    "RateLimitedError",
    "Settings",
    "SpecError",
    "TransportError",
    "UnknownAction",
    "UnknownConnection",
    "UnknownConnector",
    "UpstreamError",
    "UpstreamValidationError",
    "__version__",
    "load_settings",
]
