"""The ASGI app: REST API under /api/v1, MCP at /mcp, webhooks at /hooks, the dashboard
at /. Who may use it is ``patchwire.access``'s; the names below stay here for callers that
import them from the server."""

from patchwire.access import AccessPolicy, SiteGuard, admin_key_exists, is_loopback
from patchwire.server._app import create_app
from patchwire.store.keys import KeyRepository, check_key_name, check_scopes

__all__ = [
    "AccessPolicy",
    "KeyRepository",
    "SiteGuard",
    "admin_key_exists",
    "check_key_name",
    "check_scopes",
    "create_app",
    "is_loopback",
]
