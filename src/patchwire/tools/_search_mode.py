"""Search mode: two meta-tools in place of hundreds of tool definitions.

A model cannot take a thousand tool definitions. In search mode it is given two:

    search_tools(query, connector?) → the best few tools for the request, each with its
                                      definition (name, description, input schema) in
                                      the provider's format
    call_tool(name, arguments)      → runs one of them

``call_tool`` is no side door: it is :meth:`ToolInvoker.invoke` with the named tool, so
the call is validated, gated (a tool that needs a person's approval gets one), sent
through the one call path and audited under the tool's own name, exactly as a direct
call. It reaches only the tools of the invoker's catalog — an end user's invoker, that
end user's tools — and a name outside it (another end user's label-prefixed tool, a
disabled tool, a made-up one) is the invoker's "unknown tool" answer. A model that calls
a found tool by its own name directly is served the same way.

``arguments`` is a JSON object; in the OpenAI formats it is a string holding that object,
since strict mode cannot describe an object whose keys depend on another argument; the
string is parsed here, and anything but an object is refused with a message the model can
act on before any tool runs.

How a deployment chooses the mode: ``tool_mode = "search"`` in patchwire.toml
(``PATCHWIRE_TOOL_MODE``: the MCP server's default), ``patchwire mcp --mode search``,
``/mcp?mode=search`` (per MCP client), ``patchwire tools export --mode search``, and
``ChatSession(..., mode="search")`` (docs/tools/search.md).
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Final

from patchwire.connectors.spec import ConnectorSpec
from patchwire.tools._catalog import Tool, ToolCatalog
from patchwire.tools._export import to_anthropic, to_mcp, to_openai
from patchwire.tools._invoke import ConfirmCallback, ToolInvoker
from patchwire.tools._meta_tools import (
    CALL_TOOL,
    META_TOOLS,
    SEARCH_LIMIT,
    SEARCH_TOOLS,
    TOOL_MODES,
    ToolMode,
    check_tool_mode,
    meta_tools,
)
from patchwire.tools._result import ToolResult
from patchwire.tools._search import MAX_QUERY_CHARS, ToolIndex

__all__ = ["CALL_TOOL", "META_TOOLS", "SEARCH_TOOLS", "TOOL_MODES", "SearchMode", "ToolMode",
           "check_tool_mode", "index_for", "meta_tools"]

log = logging.getLogger("patchwire.tools.search")

#: a tool name the model may send (the catalog's are at most 64 characters)
_MAX_NAME: Final = 200

#: one index per catalog object, kept while the catalog is (an invoker keeps its catalog
#: object while its tools do not change, so a search seldom builds one)
_INDEXES: weakref.WeakKeyDictionary[ToolCatalog, ToolIndex] = weakref.WeakKeyDictionary()


def index_for(catalog: ToolCatalog, connectors: Iterable[ConnectorSpec] = ()) -> ToolIndex:
    """The search index over ``catalog`` (built on first use, kept with the catalog)."""
    found = _INDEXES.get(catalog)
    if found is None:
        found = ToolIndex.build(catalog, connectors=connectors)
        _INDEXES[catalog] = found
    return found


def _definition(tool: Tool, format: str) -> dict[str, Any]:
    if format in ("openai", "openai-responses"):
        function = to_openai(tool, style="responses")
        function.pop("type", None)
        return function
    if format == "anthropic":
        return to_anthropic(tool)
    return to_mcp(tool)


def _parse_arguments(raw: Any) -> tuple[Mapping[str, Any] | None, str | None]:
    """call_tool's ``arguments``: an object, or a string holding one (OpenAI formats)."""
    if raw is None:
        return {}, None
    if isinstance(raw, str):
        if not raw.strip():
            return {}, None
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            return None, f"arguments is not valid JSON ({exc})"
    if not isinstance(raw, Mapping):
        return None, f"arguments must be a JSON object, not {type(raw).__name__}"
    return raw, None


class SearchMode:
    """The meta-tools over an invoker's catalog, answering in one provider ``format``
    (the form ``search_tools`` shows the tools it finds in)."""

    def __init__(self, format: str = "mcp", *, limit: int = SEARCH_LIMIT) -> None:
        meta_tools(format)  # an unknown format fails here, not at the first search
        self.format = format
        self.limit = limit

    def definitions(self) -> list[dict[str, Any]]:
        """``search_tools`` and ``call_tool`` in this mode's format."""
        return meta_tools(self.format)

    async def invoke(self, invoker: ToolInvoker, name: str, arguments: Any, *,
                     session_id: str | None = None,
                     confirm: ConfirmCallback | None = None) -> ToolResult:
        """Answer a model's call of a meta-tool; any other name is a direct call of that
        tool through ``invoker`` (the same path, the same gates)."""
        if name == SEARCH_TOOLS:
            return await self.search(invoker, arguments)
        if name == CALL_TOOL:
            target, args, problem = self.unwrap(arguments)
            if problem is not None:
                return ToolResult("invalid_arguments", problem)
            assert target is not None
            return await invoker.invoke(target, args, session_id=session_id, confirm=confirm)
        return await invoker.invoke(name, arguments, session_id=session_id, confirm=confirm)

    @staticmethod
    def unwrap(arguments: Any) -> tuple[str | None, Mapping[str, Any] | None, str | None]:
        """call_tool's ``(tool name, its arguments, problem)``: a problem (text for the
        model) when they cannot be read; nothing has run then."""
        if not isinstance(arguments, Mapping):
            return None, None, ("The arguments of call_tool must be an object with the "
                                "tool's name and its arguments. Nothing was done.")
        target = arguments.get("name")
        if not isinstance(target, str) or not target.strip() or len(target) > _MAX_NAME:
            return None, None, ("call_tool needs the exact name of a tool search_tools "
                                "returned (name). Nothing was done.")
        args, problem = _parse_arguments(arguments.get("arguments"))
        if problem is not None:
            return None, None, (f"The arguments for {target[:64]} could not be read: "
                                f"{problem}. Nothing was done. Call call_tool again with "
                                "arguments as a JSON object matching the tool's schema.")
        return target.strip(), args, None

    async def search(self, invoker: ToolInvoker, arguments: Any) -> ToolResult:
        """``search_tools``: the best tools of the invoker's catalog for the query."""
        if not isinstance(arguments, Mapping) or not isinstance(arguments.get("query"), str):
            return ToolResult("invalid_arguments", "search_tools needs a query: what the "
                              "user wants done, in plain words.")
        query = arguments["query"][:MAX_QUERY_CHARS]
        connector = arguments.get("connector")
        if connector is not None and not isinstance(connector, str):
            return ToolResult("invalid_arguments", "connector must be a connector's name "
                              "(a string) or left out.")
        connector = connector.strip().lower() or None if connector else None
        catalog = await invoker.catalog()
        index = index_for(catalog, invoker.host.connectors)
        if connector is not None and not any(t.connector == connector for t in catalog):
            known = sorted({t.connector for t in catalog})
            shown = ", ".join(known[:40]) + (" …" if len(known) > 40 else "")
            return ToolResult("ok", f"No connector named {connector[:64]!r} among your "
                              f"tools. Connectors: {shown or 'none'}. Search without a "
                              "connector, or with one of these.",
                              data={"tools": []})
        hits = index.search(query, connector=connector, limit=self.limit)
        if not hits:
            return ToolResult("ok", "No tool matches that request. Try other words (what "
                              "should happen, and to what: \"refund a payment\"), or leave "
                              "out the connector.", data={"tools": []})
        tools = [_definition(hit.tool, self.format) for hit in hits]
        text = json.dumps({"tools": tools, "next": (
            "Run the one that fits with call_tool: its name, and arguments matching its "
            "schema.")}, ensure_ascii=False)
        return ToolResult("ok", text, data={"tools": tools})

