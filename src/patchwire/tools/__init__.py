"""Chatbot tools: the catalog, provider schemas, the MCP server, the approval gate.

    catalog (which actions, which names) → provider schemas (OpenAI, Anthropic, MCP)
    model's call → ToolInvoker: validate → approval gate → call path → shape → audit
"""

from patchwire.tools._catalog import Tool, ToolCatalog, ToolFilter, sanitize_tool_name
from patchwire.tools._chat import ChatError
from patchwire.tools._invoke import (
    ConfirmCallback,
    Decision,
    ToolInvoker,
    ToolResult,
    ToolStatus,
    redact_arguments,
)
from patchwire.tools._providers import (
    ExportFormat,
    StrictModeUnsupported,
    anthropic_problems,
    drop_strict_nulls,
    export_tools,
    inline_refs,
    mcp_problems,
    openai_strict_problems,
    openai_strict_schema,
    to_anthropic,
    to_mcp,
    to_openai,
)
from patchwire.tools._shaping import ShapedResult, shape_result

__all__ = [
    "ChatError",
    "ConfirmCallback",
    "Decision",
    "ExportFormat",
    "ShapedResult",
    "StrictModeUnsupported",
    "Tool",
    "ToolCatalog",
    "ToolFilter",
    "ToolInvoker",
    "ToolResult",
    "ToolStatus",
    "anthropic_problems",
    "drop_strict_nulls",
    "export_tools",
    "inline_refs",
    "mcp_problems",
    "openai_strict_problems",
    "openai_strict_schema",
    "redact_arguments",
    "sanitize_tool_name",
    "shape_result",
    "to_anthropic",
    "to_mcp",
    "to_openai",
]
