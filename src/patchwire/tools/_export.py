"""Tool definitions for each model provider: a :class:`~patchwire.tools.Tool` as an OpenAI
function (Chat Completions or Responses form), an Anthropic tool or an MCP ``Tool``, and a
whole catalog in one of those formats (:func:`export_tools`).

Every definition carries the action's input with its refs inlined and a plain object root
(:mod:`patchwire.tools._root_shape`); OpenAI definitions are strict when strict mode can say
the schema (:mod:`patchwire.tools._openai_strict`), and their descriptions longer than the
1024-character limit are cut at a paragraph or sentence boundary and end in "…". The rules
each format follows: :mod:`patchwire.tools._provider_rules`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from patchwire.tools._catalog import Tool, ToolCatalog
from patchwire.tools._meta_tools import meta_tools
from patchwire.tools._openai_strict import StrictModeUnsupported, strict_from_flat
from patchwire.tools._provider_rules import OPENAI_DESCRIPTION_MAX
from patchwire.tools._root_shape import provider_schema
from patchwire.tools._schema_common import trim_text

__all__ = ["ExportFormat", "export_tools", "to_anthropic", "to_mcp", "to_openai"]

ExportFormat = Literal["openai", "openai-responses", "anthropic", "mcp"]


def to_openai(tool: Tool, *, strict: bool = True,
              style: Literal["chat", "responses"] = "chat") -> dict[str, Any]:
    """The OpenAI function tool for ``tool``: Chat Completions form (``style="chat"``) or
    the Responses API's flat form. With ``strict`` the parameters follow Structured Outputs,
    what strict mode cannot say encoded (JSON strings, key/value pairs; the tool invoker
    decodes the arguments: docs/tools/strict-mode.md); a tool it cannot express even so is
    emitted with ``"strict": false`` instead."""
    parameters = provider_schema(tool.input_schema)
    is_strict = False
    if strict:
        try:
            parameters = strict_from_flat(parameters)
            is_strict = True
        except StrictModeUnsupported:
            pass
    function: dict[str, Any] = {
        "name": tool.name,
        "description": trim_text(tool.description, OPENAI_DESCRIPTION_MAX),
        "parameters": parameters,
        "strict": is_strict,
    }
    if style == "chat":
        return {"type": "function", "function": function}
    if style == "responses":
        return {"type": "function", **function}
    raise ValueError(f"unknown OpenAI style {style!r}")


def to_anthropic(tool: Tool) -> dict[str, Any]:
    """The Anthropic Messages API tool for ``tool``."""
    return {"name": tool.name, "description": tool.description,
            "input_schema": provider_schema(tool.input_schema)}


def to_mcp(tool: Tool) -> dict[str, Any]:
    """``tool`` as a plain-dict MCP ``Tool`` (``tools/list`` wire form)."""
    return {
        "name": tool.name,
        "title": tool.title,
        "description": tool.description,
        "inputSchema": provider_schema(tool.input_schema),
        "annotations": {
            "title": tool.title,
            "readOnlyHint": tool.read_only,
            "destructiveHint": tool.destructive,
            "idempotentHint": tool.idempotent,
            "openWorldHint": True,
        },
    }


_EXPORTERS: dict[str, Callable[[Tool], dict[str, Any]]] = {
    "openai": to_openai,
    "openai-responses": lambda tool: to_openai(tool, style="responses"),
    "anthropic": to_anthropic,
    "mcp": to_mcp,
}


def export_tools(catalog: ToolCatalog | Iterable[Tool], format: ExportFormat,
                 mode: Literal["all", "search"] = "all") -> list[dict[str, Any]]:
    """Every tool of ``catalog`` in ``format`` (OpenAI definitions are strict when they can
    be); in ``mode="search"`` the two meta-tools instead, ``search_tools`` and
    ``call_tool``, through which a model finds and runs the catalog's tools
    (:mod:`patchwire.tools._search_mode`)."""
    try:
        exporter = _EXPORTERS[format]
    except KeyError:
        raise ValueError(f"unknown tool format {format!r}; expected one of "
                         f"{', '.join(_EXPORTERS)}") from None
    if mode == "search":
        return meta_tools(format)
    if mode != "all":
        raise ValueError(f"unknown tool mode {mode!r}; expected all or search")
    return [exporter(tool) for tool in catalog]
