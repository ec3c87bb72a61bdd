"""The dashboard at ``/``: server-rendered pages with live partial updates (issue 7)."""

from patchwire.dashboard._app import dashboard_router, mount_dashboard
from patchwire.dashboard._forms import build_arguments, form_fields
from patchwire.dashboard._render import templates
from patchwire.dashboard._runs import timeline
from patchwire.dashboard._services import DashboardServices
from patchwire.dashboard._tools import PLAYGROUND_SESSION

__all__ = [
    "PLAYGROUND_SESSION",
    "DashboardServices",
    "build_arguments",
    "dashboard_router",
    "form_fields",
    "mount_dashboard",
    "templates",
    "timeline",
]
