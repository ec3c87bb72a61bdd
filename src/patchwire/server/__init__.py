"""The ASGI app: REST API under /api/v1 (more surfaces join in later issues)."""

from patchwire.server._app import create_app, is_loopback
from patchwire.server._auth import SiteGuard

__all__ = ["SiteGuard", "create_app", "is_loopback"]
