"""Chatbot tools: the catalog, provider schemas, the MCP server, the approval gate.

    catalog (which actions, which names) → provider schemas (OpenAI, Anthropic, MCP)
    model's call → ToolInvoker: validate → approval gate → call path → shape → audit
"""

from patchwire.tools._catalog import Tool, ToolCatalog, ToolFilter, sanitize_tool_name
from patchwire.tools._chat import ChatError
from patchwire.tools._export import ExportFormat, export_tools, to_anthropic, to_mcp, to_openai
from patchwire.tools._invoke import (
    ConfirmCallback,
    Decision,
    ToolInvoker,
    ToolResult,
    ToolStatus,
    redact_arguments,
)
from patchwire.tools._openai_strict import StrictModeUnsupported, openai_strict_schema
from patchwire.tools._provider_rules import (
    anthropic_problems,
    mcp_problems,
    openai_strict_problems,
)
from patchwire.tools._quota import EndUserQuota
from patchwire.tools._schema_refs import inline_refs
from patchwire.tools._search import MAX_QUERY_CHARS, ToolHit, ToolIndex, catalog_tool_index
from patchwire.tools._search_mode import (
    CALL_TOOL,
    SEARCH_TOOLS,
    TOOL_MODES,
    SearchMode,
    ToolMode,
    check_tool_mode,
    index_for,
    meta_tools,
)
from patchwire.tools._shaping import ShapedResult, shape_result
from patchwire.tools._strict_arguments import drop_strict_nulls

from ._chat import (
    DEFAULT_SYSTEM_PROMPT,
    ChatSession,
    ChatTurn,
    ask_in_thread,
    make_client,
    terminal_confirm,
)
from ._mcp import McpHttpEndpoint, serve_stdio

__all__ = [
    "CALL_TOOL",
    "DEFAULT_SYSTEM_PROMPT",
    "MAX_QUERY_CHARS",
    "SEARCH_TOOLS",
    "TOOL_MODES",
    "ChatError",
    "ChatSession",
    "ChatTurn",
    "ConfirmCallback",
    "Decision",
    "EndUserQuota",
    "ExportFormat",
    "McpHttpEndpoint",
    "SearchMode",
    "ShapedResult",
    "StrictModeUnsupported",
    "Tool",
    "ToolCatalog",
    "ToolFilter",
    "ToolHit",
    "ToolIndex",
    "ToolInvoker",
    "ToolMode",
    "ToolResult",
    "ToolStatus",
    "anthropic_problems",
    "ask_in_thread",
    "catalog_tool_index",
    "check_tool_mode",
    "drop_strict_nulls",
    "export_tools",
    "index_for",
    "inline_refs",
    "make_client",
    "mcp_problems",
    "meta_tools",
    "openai_strict_problems",
    "openai_strict_schema",
    "redact_arguments",
    "sanitize_tool_name",
    "serve_stdio",
    "shape_result",
    "terminal_confirm",
    "to_anthropic",
    "to_mcp",
    "to_openai",
]
