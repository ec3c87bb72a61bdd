"""The dashboard at ``/``: server-rendered pages with live partial updates (issue 7)."""

from patchwire.dashboard._app import mount_dashboard

__all__ = ["mount_dashboard"]
