"""Chatbot tools: the catalog, provider schemas, the MCP server, the approval gate.

    catalog (which actions, which names) → provider schemas (OpenAI, Anthropic, MCP)
    model's call → ToolInvoker: validate → approval gate → call path → shape → audit
"""

from patchwire.tools._catalog import Tool, ToolCatalog, ToolFilter, sanitize_tool_name
from patchwire.tools._invoke import (
    ConfirmCallback,
    Decision,
    ToolInvoker,
    ToolResult,
    ToolStatus,
    redact_arguments,
)
from patchwire.tools._shaping import ShapedResult, shape_result

__all__ = [
    "ConfirmCallback",
    "Decision",
    "ShapedResult",
    "Tool",
    "ToolCatalog",
    "ToolFilter",
    "ToolInvoker",
    "ToolResult",
    "ToolStatus",
    "redact_arguments",
    "sanitize_tool_name",
    "shape_result",
]
