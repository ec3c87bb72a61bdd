"""Patchwire: connect AI chatbots to the APIs they must act on.

    from patchwire import Patchwire

    async with Patchwire() as pw:
        order = await pw.call("shop.get_order", {"order_id": "42"}, connection="acme")

What an application embedding Patchwire needs is here (docs/embedding.md): the facade
(``Patchwire``) and the ``Runtime`` under it, the tool invoker and its result, tool
export, the REST app (``create_app``), flow engines, settings, and every error.
"""

from typing import TYPE_CHECKING, Any

from patchwire.config import Settings, load_settings
from patchwire.errors import (
    ApprovalStateError,
    AuthError,
    BlockedDestinationError,
    CallContext,
    CallError,
    CallTimeoutError,
    ChatError,
    CircuitOpenError,
    ConfigError,
    ConflictError,
    ConnectionExists,
    ConnectorExists,
    ConnectSessionClosed,
    CustomCodeError,
    EngineUnavailable,
    ExpressionError,
    FlowInputError,
    InputValidationError,
    InvalidSubscription,
    LookupFailed,
    NotConnected,
    NotFoundError,
    OAuthError,
    OpenAPIImportError,
    PaginationError,
    PatchwireError,
    RateLimitedError,
    ReauthRequired,
    RecordingError,
    RequestRenderError,
    ResponseMappingError,
    RunStateError,
    SpecError,
    SpecProblem,
    StoreError,
    TransportError,
    UnknownAction,
    UnknownApiKey,
    UnknownApproval,
    UnknownConnection,
    UnknownConnector,
    UnknownConnectSession,
    UnknownDelivery,
    UnknownEndUserToken,
    UnknownFlow,
    UnknownInboxEvent,
    UnknownOAuthApp,
    UnknownRecord,
    UnknownRun,
    UnknownSubscription,
    UnknownSync,
    UnknownTool,
    UnknownWebhookSource,
    UnrecordedRequest,
    UpstreamError,
    UpstreamResponseError,
    UpstreamValidationError,
    ValidationProblem,
    VaultError,
    WebhookRejected,
    WebhookSourceExists,
)
from patchwire.version import __version__

# Type-only imports of what loads lazily; none of these modules imports this face (the
# outer layers do: ``create_app`` is not typed here, import it from patchwire.server for
# its signature).
if TYPE_CHECKING:
    from patchwire._patchwire import ConnectionInfo, ConnectionTest, Patchwire
    from patchwire.calls import CallOutcome, CallRequest
    from patchwire.connectors import ConnectorRegistry, ConnectorSpec
    from patchwire.flows import Engine, create_engine
    from patchwire.flows import create_engine as FlowEngine
    from patchwire.runtime import BACKGROUND_REFRESH_INTERVAL, Runtime
    from patchwire.tools import ExportFormat, ToolInvoker, ToolResult, ToolStatus, export_tools


# The engine (SQLAlchemy, aiohttp, pydantic models) is imported on first use, so that
# commands which never call an API — `patchwire connector import`, `schema` — start fast.
# ``FlowEngine`` builds the engine the settings ask for (``engine: embedded|temporal``):
# it is ``create_engine``; annotate with ``Engine``.
_LAZY: dict[str, tuple[str, str]] = {
    "BACKGROUND_REFRESH_INTERVAL": ("patchwire.runtime", "BACKGROUND_REFRESH_INTERVAL"),
    "CallOutcome": ("patchwire.calls", "CallOutcome"),
    "CallRequest": ("patchwire.calls", "CallRequest"),
    "ConnectionInfo": ("patchwire._patchwire", "ConnectionInfo"),
    "ConnectionTest": ("patchwire._patchwire", "ConnectionTest"),
    "ConnectorRegistry": ("patchwire.connectors", "ConnectorRegistry"),
    "ConnectorSpec": ("patchwire.connectors", "ConnectorSpec"),
    "Engine": ("patchwire.flows", "Engine"),
    "ExportFormat": ("patchwire.tools", "ExportFormat"),
    "FlowEngine": ("patchwire.flows", "create_engine"),
    "Patchwire": ("patchwire._patchwire", "Patchwire"),
    "Runtime": ("patchwire.runtime", "Runtime"),
    "ToolInvoker": ("patchwire.tools", "ToolInvoker"),
    "ToolResult": ("patchwire.tools", "ToolResult"),
    "ToolStatus": ("patchwire.tools", "ToolStatus"),
    "create_app": ("patchwire.server", "create_app"),
    "create_engine": ("patchwire.flows", "create_engine"),
    "export_tools": ("patchwire.tools", "export_tools"),
}


def __getattr__(name: str) -> Any:
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module 'patchwire' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(found[0]), found[1])
    globals()[name] = value
    return value


__all__ = [
    "BACKGROUND_REFRESH_INTERVAL",
    "ApprovalStateError",
    "AuthError",
    "BlockedDestinationError",
    "CallContext",
    "CallError",
    "CallOutcome",
    "CallRequest",
    "CallTimeoutError",
    "ChatError",
    "CircuitOpenError",
    "ConfigError",
    "ConflictError",
    "ConnectSessionClosed",
    "ConnectionExists",
    "ConnectionInfo",
    "ConnectionTest",
    "ConnectorExists",
    "ConnectorRegistry",
    "ConnectorSpec",
    "CustomCodeError",
    "Engine",
    "EngineUnavailable",
    "ExportFormat",
    "ExpressionError",
    "FlowEngine",
    "FlowInputError",
    "InputValidationError",
    "InvalidSubscription",
    "LookupFailed",
    "NotConnected",
    "NotFoundError",
    "OAuthError",
    "OpenAPIImportError",
    "PaginationError",
    "Patchwire",
    "PatchwireError",
    "RateLimitedError",
    "ReauthRequired",
    "RecordingError",
    "RequestRenderError",
    "ResponseMappingError",
    "RunStateError",
    "Runtime",
    "Settings",
    "SpecError",
    "SpecProblem",
    "StoreError",
    "ToolInvoker",
    "ToolResult",
    "ToolStatus",
    "TransportError",
    "UnknownAction",
    "UnknownApiKey",
    "UnknownApproval",
    "UnknownConnectSession",
    "UnknownConnection",
    "UnknownConnector",
    "UnknownDelivery",
    "UnknownEndUserToken",
    "UnknownFlow",
    "UnknownInboxEvent",
    "UnknownOAuthApp",
    "UnknownRecord",
    "UnknownRun",
    "UnknownSubscription",
    "UnknownSync",
    "UnknownTool",
    "UnknownWebhookSource",
    "UnrecordedRequest",
    "UpstreamError",
    "UpstreamResponseError",
    "UpstreamValidationError",
    "ValidationProblem",
    "VaultError",
    "WebhookRejected",
    "WebhookSourceExists",
    "__version__",
    "create_app",
    "create_engine",
    "export_tools",
    "load_settings",
]
