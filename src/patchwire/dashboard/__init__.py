"""The dashboard at ``/``: server-rendered pages with live partial updates (issue 7)."""

from patchwire.dashboard._app import dashboard_router, mount_dashboard

__all__ = ["dashboard_router", "mount_dashboard"]
