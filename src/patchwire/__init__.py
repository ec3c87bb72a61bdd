"""Patchwire: connect AI chatbots to the APIs they must act on.

    from patchwire import Patchwire

    async with Patchwire() as pw:
        order = await pw.call("shop.get_order", {"order_id": "42"}, connection="acme")
"""

from patchwire._patchwire import ConnectionInfo, Patchwire
from patchwire.calls import CallOutcome
from patchwire.config import Settings, load_settings
from patchwire.connectors import ConnectorRegistry, ConnectorSpec
from patchwire.errors import (
    AuthError,
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

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "CallError",
    "CallOutcome",
    "CallTimeoutError",
    "ConfigError",
    "ConflictError",
    "ConnectionExists",
    "ConnectionInfo",
    "ConnectorRegistry",
    "ConnectorSpec",
    "InputValidationError",
    "NotFoundError",
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
