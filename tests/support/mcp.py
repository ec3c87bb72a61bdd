"""The MCP tests' environment: a store with connection ``acme`` and a pending order."""

from __future__ import annotations

from dataclasses import dataclass

from patchwire import Patchwire
from patchwire.config import Settings
from patchwire.sandbox import Sandbox

CONFIRM_TOOL = "shop_update_order_status"


@dataclass
class Env:
    """A store with connection ``acme`` (shop, canary key) and a pending order."""

    settings: Settings
    pw: Patchwire
    sandbox: Sandbox
    canary: str
    order_id: str
    #: the Patchwire behind the served app, once ``mcp_url`` serves one
    server: Patchwire | None = None
