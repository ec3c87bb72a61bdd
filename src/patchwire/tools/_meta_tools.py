"""Search mode's two meta-tools, ``search_tools`` and ``call_tool``, as each provider
format defines a tool (what :func:`~patchwire.tools.export_tools` gives in search mode;
how they are answered: :mod:`patchwire.tools._search_mode`). Every definition follows
the provider rules (:mod:`patchwire.tools._provider_rules`): OpenAI's in strict mode."""

from __future__ import annotations

from typing import Any, Final, Literal

from patchwire.tools._search import MAX_QUERY_CHARS

__all__ = ["CALL_TOOL", "META_TOOLS", "SEARCH_LIMIT", "SEARCH_TOOLS", "TOOL_MODES", "ToolMode",
           "check_tool_mode", "meta_tools"]

ToolMode = Literal["all", "search"]
TOOL_MODES: Final[tuple[ToolMode, ...]] = ("all", "search")
SEARCH_TOOLS: Final = "search_tools"
CALL_TOOL: Final = "call_tool"
META_TOOLS: Final = frozenset({SEARCH_TOOLS, CALL_TOOL})
#: tools one search answers with: enough to choose from, few enough to read
SEARCH_LIMIT: Final = 5

_SEARCH_DESCRIPTION: Final = (
    "Find the tools that can do what the user asks. There are many tools (payments, "
    "orders, tickets, calendars, messages, files...) and you see none until you search. "
    "Describe the task in plain words, e.g. \"refund a payment\", \"find a free slot next "
    "Tuesday\", \"open a support ticket\"; optionally name a connector (e.g. \"stripe\") "
    "to search only its tools. Returns the best few tools, each with its input schema; "
    "run one with call_tool. Search again with other words if none fits.")
_CALL_DESCRIPTION: Final = (
    "Run a tool that search_tools returned: its exact name and its arguments, matching the "
    "input schema search_tools showed. Tools that change something may need a person's "
    "approval first; the result says so.")
_QUERY: Final[dict[str, Any]] = {
    "type": "string",
    "description": f"What the user wants done, in plain words (at most {MAX_QUERY_CHARS} "
                   "characters)"}
_CONNECTOR: Final[dict[str, Any]] = {
    "type": "string",
    "description": "Only tools of this connector, by name (e.g. \"stripe\", \"zendesk\")"}
_NAME: Final[dict[str, Any]] = {
    "type": "string", "description": "The tool's exact name, as search_tools returned it"}


def check_tool_mode(mode: str) -> ToolMode:
    """``mode`` as a :data:`ToolMode`; ValueError naming the choices otherwise."""
    if mode == "all":
        return "all"
    if mode == "search":
        return "search"
    raise ValueError(f"the tool mode must be one of {', '.join(TOOL_MODES)}, not {mode!r}")


def _openai_function(name: str, description: str, properties: dict[str, Any],
                     required: list[str]) -> dict[str, Any]:
    """A strict-mode function: every property listed in ``required``, the optional ones
    nullable (strict mode's way of saying optional)."""
    props = {key: (value if key in required else
                   {**value, "type": [value["type"], "null"]})
             for key, value in properties.items()}
    return {"name": name, "description": description,
            "parameters": {"type": "object", "properties": props,
                           "required": list(properties), "additionalProperties": False},
            "strict": True}


def meta_tools(format: str) -> list[dict[str, Any]]:
    """The definitions of ``search_tools`` and ``call_tool`` in ``format`` (one of
    :data:`~patchwire.tools.ExportFormat`)."""
    search_props = {"query": _QUERY, "connector": _CONNECTOR}
    if format in ("openai", "openai-responses"):
        arguments = {"type": "string", "description": (
            "The tool's arguments: a JSON object written as a string, e.g. "
            "\"{\\\"payment_id\\\": \\\"pi_123\\\"}\" (\"{}\" for none)")}
        functions = [
            _openai_function(SEARCH_TOOLS, _SEARCH_DESCRIPTION, search_props, ["query"]),
            _openai_function(CALL_TOOL, _CALL_DESCRIPTION,
                             {"name": _NAME, "arguments": arguments}, ["name", "arguments"]),
        ]
        if format == "openai":
            return [{"type": "function", "function": f} for f in functions]
        return [{"type": "function", **f} for f in functions]
    arguments_object = {"type": "object", "description": (
        "The tool's arguments, an object matching its input schema ({} for none)")}
    schemas = [
        (SEARCH_TOOLS, "Search tools", _SEARCH_DESCRIPTION,
         {"type": "object", "properties": search_props, "required": ["query"],
          "additionalProperties": False}, True),
        (CALL_TOOL, "Call a tool", _CALL_DESCRIPTION,
         {"type": "object", "properties": {"name": _NAME, "arguments": arguments_object},
          "required": ["name", "arguments"], "additionalProperties": False}, False),
    ]
    if format == "anthropic":
        return [{"name": n, "description": d, "input_schema": s}
                for n, _, d, s, _ in schemas]
    if format == "mcp":
        return [{"name": n, "title": t, "description": d, "inputSchema": s,
                 "annotations": {"title": t, "readOnlyHint": read_only,
                                 # call_tool runs whatever it names: the named tool's own
                                 # approval gate applies, so the client is told it may act
                                 "destructiveHint": not read_only,
                                 "idempotentHint": read_only, "openWorldHint": not read_only}}
                for n, t, d, s, read_only in schemas]
    raise ValueError(f"unknown tool format {format!r}; expected one of openai, "
                     "openai-responses, anthropic, mcp")
