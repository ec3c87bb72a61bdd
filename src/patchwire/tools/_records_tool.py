"""Read-only tools over synced records ("search synced customers").

A sync with a ``tool:`` section is offered to models as a search over its records in the
store: a query string, the exact-match filters the sync declares, a result count. It never
calls the upstream, so it answers at once, costs no rate limit and works while the upstream
is down; the answer says when the records were last synced, so the model can tell the user
how fresh they are.

Tools are bound to connections like action tools: one connection of the sync's connector
in the catalog keeps the tool's name; several give one tool per connection, prefixed by
its name — an end user's catalog (scoped to their connections) never searches anyone
else's records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs

from patchwire.config import Settings
from patchwire.errors import SpecError
from patchwire.expressions import compile_expression
from patchwire.store import Store
from patchwire.sync import RecordStore
from patchwire.sync.spec import SyncRegistry, SyncSpec
from patchwire.tools._catalog import Tool, ToolCatalog, ToolFilter, sanitize_tool_name
from patchwire.tools._result import ToolResult
from patchwire.tools._shaping import shape_result

__all__ = ["RECORDS_KIND", "invoke_records_tool", "load_syncs", "with_records_tools"]

log = logging.getLogger("patchwire.tools")

#: ``Tool.kind`` of a records tool; its target is ``records:<sync id>``
RECORDS_KIND = "records"


def load_syncs(settings: Settings) -> dict[str, SyncSpec]:
    """The user's syncs (``settings.sync_paths``); broken files are logged and skipped."""
    try:
        reg = SyncRegistry.load(settings.sync_paths)
    except SpecError as exc:  # pragma: no cover - load() collects problems instead
        log.warning("sync definitions not loaded: %s", exc)
        return {}
    for problem in reg.problems:
        log.warning("sync definition skipped: %s", problem)
    return {s.id: s for s in reg}


def input_schema(spec: SyncSpec) -> dict[str, Any]:
    assert spec.tool is not None
    props: dict[str, Any] = {
        "query": {"type": "string", "description": "words that must all occur in the "
                  f"{spec.model} (any field, case-insensitive); empty lists every one"}}
    for name in spec.tool.filters:
        props[name] = {"type": "string", "description": f"only {spec.model}s whose {name} "
                       "is exactly this"}
    props["limit"] = {"type": "integer", "minimum": 1, "maximum": spec.tool.max_results,
                      "description": f"how many {spec.model}s at most "
                                     f"(default {min(10, spec.tool.max_results)})"}
    return {"type": "object", "properties": props, "additionalProperties": False}


def _tool(spec: SyncSpec, connection: str | None) -> Tool:
    assert spec.tool is not None
    title = spec.title or spec.model.replace("_", " ").capitalize() + "s"
    description = (spec.tool.description or
                   f"Search the synced {spec.model}s ({spec.description or title}) stored "
                   "locally; answers without calling the upstream service.").strip()
    return Tool(name="", target=f"records:{spec.id}", connector=spec.connector,
                connection=connection, title=f"Search synced {title.lower()}",
                description=description, input_schema=input_schema(spec), read_only=True,
                destructive=False, idempotent=True, confirm=False,
                max_result_bytes=8192, tags=("records", spec.model), kind=RECORDS_KIND)


def with_records_tools(catalog: ToolCatalog, syncs: Iterable[SyncSpec],
                       connections: Sequence[tuple[str, str]],
                       filter: ToolFilter | None = None,
                       prefixes: Mapping[str, str | None] | None = None) -> ToolCatalog:
    """``catalog`` plus a search tool per sync with ``tool:`` and connection in scope.

    ``prefixes`` (an end user's catalog) gives each connection's name prefix instead of
    its name: None for their default one (plain names), their label for the others."""
    taken = set(catalog.names())
    added: list[Tool] = []
    for spec in syncs:
        if spec.tool is None:
            continue
        bound = sorted(name for name, connector in connections
                       if connector == spec.connector
                       and (not spec.connections or name in spec.connections))
        for conn in bound:
            tool = _tool(spec, conn)
            if filter is not None and not filter.admits(tool):
                continue
            if prefixes is not None:
                prefix = prefixes.get(conn)
                base = f"{prefix}_{spec.tool_name}" if prefix else spec.tool_name
            else:
                base = f"{conn}_{spec.tool_name}" if len(bound) > 1 else spec.tool_name
            name = sanitize_tool_name(base)
            n = 0
            while name in taken:  # an action tool has the name: the sync's gets a suffix
                n += 1
                name = sanitize_tool_name(base, salt=f"{tool.target}\0{conn}\0{n}")
            taken.add(name)
            added.append(replace(tool, name=name))
    return ToolCatalog([*catalog, *added]) if added else catalog


async def invoke_records_tool(store: Store, tool: Tool, args: Mapping[str, Any],
                              syncs: Mapping[str, SyncSpec]) -> ToolResult:
    """Answer a records tool call from the store."""

    spec = syncs.get(tool.target.removeprefix("records:"))
    if spec is None or spec.tool is None or tool.connection is None:
        return ToolResult("error", f"{tool.name} is no longer configured; tell the user it "
                          "is unavailable.")
    validator = jsonschema_rs.Draft202012Validator(dict(tool.input_schema))
    problems = [f"- {'.'.join(map(str, e.instance_path)) or '(the arguments object)'}: "
                f"{e.message}" for e in validator.iter_errors(dict(args))]
    if problems:
        return ToolResult("invalid_arguments", f"The arguments for {tool.name} are invalid; "
                          "fix these and call it again:\n" + "\n".join(problems))
    limit = int(args.get("limit") or min(10, spec.tool.max_results))
    filters = {k: str(args[k]) for k in spec.tool.filters if args.get(k) not in (None, "")}
    records_store = RecordStore(store)
    records, more = await records_store.search(
        spec.model, connection=tool.connection, sync_id=spec.id,
        query=str(args.get("query") or ""), filters=filters, limit=limit)
    state = await records_store.state(spec.id, tool.connection) or {}
    projection = compile_expression(spec.tool.result) if spec.tool.result else None
    rows = [projection.evaluate(r.data) if projection is not None else r.data for r in records]
    last = state.get("last_poll_at")
    data = {"results": rows, "count": len(rows), "more": more is not None,
            "synced_at": None if last is None else datetime.fromtimestamp(last, UTC)
            .isoformat(timespec="seconds")}
    if not rows:
        data["note"] = (f"no synced {spec.model} matches; fewer words or filters may find one"
                        if last is not None else
                        f"the {spec.model}s have not been synced yet")
    shaped = shape_result(data, max_bytes=tool.max_result_bytes)
    return ToolResult("ok", shaped.text, shaped.data, truncated=shaped.truncated)
