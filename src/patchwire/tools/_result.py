"""How a tool call ended: the one result type every tool path returns.

Its own module so that the invoker and the tools it dispatches to (records tools...) can
both use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ToolResult", "ToolStatus"]

#: ``connection_required``: the end user must connect (or reconnect) an account first, the
#: text says how (a connect link); ``rate_limited``: the end user's tool-call quota is spent
#: for now, the text says when to try again
ToolStatus = Literal["ok", "invalid_arguments", "unknown_tool", "error", "pending_approval",
                     "denied", "connection_required", "rate_limited"]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """How a tool call ended. ``text`` is what the model reads; ``data`` is the shaped,
    JSON-able result when ``status == "ok"``."""

    status: ToolStatus
    text: str
    data: Any = None
    approval_id: str | None = None
    truncated: bool = False

    @property
    def is_error(self) -> bool:
        return self.status != "ok"
