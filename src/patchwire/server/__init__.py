"""The ASGI app: REST API under /api/v1 (more surfaces join in later issues)."""

from patchwire.server._app import create_app, is_loopback
from patchwire.server._auth import SiteGuard

from ._auth import AccessPolicy, KeyRepository, admin_key_exists, check_key_name, check_scopes

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
