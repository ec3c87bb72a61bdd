"""`patchwire tools ...`: which actions chatbots may call, their provider schemas, the audit."""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

import typer
from rich.table import Table

from patchwire.cli._common import console, escape, fail, print_json, run, settings

app = typer.Typer(help="Tools: actions offered to chatbots (MCP, OpenAI, Anthropic).",
                  no_args_is_help=True)

ExportFormat = Literal["openai", "openai-responses", "anthropic", "mcp"]
_FORMATS: tuple[ExportFormat, ...] = ("openai", "openai-responses", "anthropic", "mcp")


def _filter(connector: list[str] | None, tag: list[str] | None, read_only: bool) -> Any:
    from patchwire.tools import ToolFilter

    return ToolFilter(connectors=frozenset(connector) if connector else None,
                      tags=frozenset(tag) if tag else None, read_only=read_only)


async def _catalog(pw: Any, connection: list[str] | None, every_action: bool,
                   connector: list[str] | None, tag: list[str] | None, read_only: bool) -> Any:
    from patchwire.connectors.spec import ToolSpec
    from patchwire.tools import ToolCatalog, ToolInvoker

    flt = _filter(connector, tag, read_only)
    if connection:
        return await ToolInvoker(pw, connections=connection, filter=flt).catalog()
    await pw.open()
    stored = await ToolInvoker(pw).repository.tool_settings()
    overrides = {t: ToolSpec.model_validate(s) for t, s in stored.items()}
    return ToolCatalog.build(pw.connectors, overrides=overrides, filter=flt,
                             every_action=every_action)


_CONNECTION = typer.Option(None, "--connection", "-c",
                           help="bind tools to these connections (an end user's); repeatable")
_CONNECTOR = typer.Option(None, "--connector", help="only these connectors; repeatable")
_TAG = typer.Option(None, "--tag", help="only actions with one of these tags; repeatable")
_READ_ONLY = typer.Option(False, "--read-only", help="only tools that change nothing")
_ALL = typer.Option(False, "--all", help="every action, not only those offered as tools")


@app.command("list")
def list_tools(
    connection: list[str] = _CONNECTION, connector: list[str] = _CONNECTOR,
    tag: list[str] = _TAG, read_only: bool = _READ_ONLY, every_action: bool = _ALL,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the tools a chatbot sees, with their safety flags."""

    async def main() -> None:
        from patchwire import Patchwire

        async with Patchwire(settings()) as pw:
            catalog = await _catalog(pw, connection, every_action, connector, tag, read_only)
        if as_json:
            print_json([{"name": t.name, "target": t.target, "connection": t.connection,
                         "read_only": t.read_only, "destructive": t.destructive,
                         "idempotent": t.idempotent, "confirm": t.confirm,
                         "description": t.description} for t in catalog])
            return
        table = Table("tool", "action", "connection", "flags", "description")
        for t in catalog:
            flags = ", ".join(f for f, on in (("read-only", t.read_only),
                                              ("destructive", t.destructive),
                                              ("confirm", t.confirm)) if on)
            table.add_row(t.name, t.target, escape(t.connection or "-"), flags,
                          escape(t.description.splitlines()[0] if t.description else ""))
        console.print(table)
        if not len(catalog):
            console.print("no tools: mark actions with `tool:` in the connector YAML or run "
                          "`patchwire tools enable connector.action`")

    run(main())


@app.command("export")
def export(
    format_: str = typer.Option("openai", "--format", "-f",
                                help="openai | openai-responses | anthropic | mcp"),
    connection: list[str] = _CONNECTION, connector: list[str] = _CONNECTOR,
    tag: list[str] = _TAG, read_only: bool = _READ_ONLY, every_action: bool = _ALL,
    mode: str = typer.Option("all", "--mode", help="all: every tool's definition; search: "
                             "the two meta-tools search_tools and call_tool (big catalogs)"),
) -> None:
    """Print tool definitions in a provider's format (JSON), ready to send to its API."""
    if format_ not in _FORMATS:
        fail(f"--format must be one of {', '.join(_FORMATS)}, got {format_!r}", code=2)
    if mode not in ("all", "search"):
        fail(f"--mode must be all or search, got {mode!r}", code=2)

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.tools import check_tool_mode, export_tools

        if mode == "search":  # the meta-tools are the same whatever the catalog holds
            print_json(export_tools([], format_, mode="search"))
            return
        async with Patchwire(settings()) as pw:
            catalog = await _catalog(pw, connection, every_action, connector, tag, read_only)
        print_json(export_tools(catalog, format_, mode=check_tool_mode(mode)))

    run(main())


@app.command("search")
def search(
    query: str = typer.Argument(..., help="what a person wants done, in their words"),
    as_json: bool = typer.Option(False, "--json", help="a ranked JSON array of "
                                 "{name, action, score}"),
    every_action: bool = typer.Option(False, "--catalog", help="search every action of "
                                      "every catalog connector, not the deployment's tools"),
    connector: str = typer.Option(None, "--connector", help="only this connector's tools"),
    limit: int = typer.Option(5, "--limit", min=1, max=50),
) -> None:
    """Find the tools that fit a request, best first (ranked locally: no model, no
    network)."""
    if not query.strip():
        fail("QUERY must say what to do, e.g. \"refund a payment\"", code=2)

    async def main() -> None:
        from patchwire.tools import ToolIndex, catalog_tool_index

        if every_action:
            index = catalog_tool_index()
        else:
            from patchwire import Patchwire

            async with Patchwire(settings()) as pw:
                catalog = await _catalog(pw, None, False, None, None, False)
                index = ToolIndex.build(catalog, connectors=pw.connectors)
        hits = index.search(query, connector=connector, limit=limit)
        if as_json:
            print_json([{"name": h.tool.name, "action": h.tool.target, "score": h.score}
                        for h in hits])
            return
        table = Table("#", "tool", "action", "score", "description")
        for rank, hit in enumerate(hits, 1):
            t = hit.tool
            table.add_row(str(rank), t.name, t.target, f"{hit.score:.2f}",
                          escape(t.description.splitlines()[0][:80] if t.description else ""))
        console.print(table)
        if not hits:
            where = "the catalog" if every_action else "the deployment's tools"
            console.print(f"no tool in {where} matches; try other words"
                          + ("" if every_action else ", or --catalog to search every "
                             "catalog action"))

    run(main())


def _targets(pw: Any, patterns: list[str]) -> list[str]:
    every = [f"{c.name}.{a}" for c in pw.connectors for a in c.actions]
    found: list[str] = []
    for pattern in patterns:
        matched = [t for t in every if fnmatch.fnmatchcase(t, pattern)]
        if not matched:
            if "*" in pattern or "?" in pattern:
                fail(f"no action matches {pattern!r}", code=2)
            pw.connectors.resolve(pattern)  # raises with the known names
        found.extend(m for m in matched if m not in found)
    return found


@app.command("enable")
def enable(
    targets: list[str] = typer.Argument(..., help="actions (connector.action; * wildcards)"),
    name: str = typer.Option(None, "--name", help="tool name (one action only)"),
    description: str = typer.Option(None, "--description"),
    confirm: bool = typer.Option(None, "--confirm/--no-confirm",
                                 help="require a person's approval for every call"),
    destructive: bool = typer.Option(None, "--destructive/--not-destructive"),
    result: str = typer.Option(None, "--result", help="JSONata projection of the result"),
    max_result_bytes: int = typer.Option(None, "--max-result-bytes", min=256),
) -> None:
    """Offer actions as tools (stored; wins over the connector YAML)."""

    async def main() -> None:
        from pydantic import ValidationError

        from patchwire import Patchwire
        from patchwire.connectors.spec import ToolSpec
        from patchwire.expressions import ExpressionError, compile_expression
        from patchwire.tools import ToolInvoker

        if result is not None:
            try:
                compile_expression(result)
            except ExpressionError as exc:
                fail(f"--result: {exc}", code=2)
        async with Patchwire(settings()) as pw:
            chosen = _targets(pw, targets)
            if name is not None and len(chosen) != 1:
                fail(f"--name applies to one action, but {len(chosen)} match", code=2)
            repo = ToolInvoker(pw).repository
            stored = await repo.tool_settings()
            for target in chosen:
                _, action = pw.connectors.resolve(target)
                base = stored.get(target) or (
                    action.tool_spec.model_dump(exclude_unset=True) if action.tool_spec else {})
                changes = {k: v for k, v in {
                    "name": name, "description": description, "confirm": confirm,
                    "destructive": destructive, "result": result,
                    "max_result_bytes": max_result_bytes}.items() if v is not None}
                merged = {**base, **changes, "enabled": True}
                try:
                    ToolSpec.model_validate(merged)
                except ValidationError as exc:
                    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                         for e in exc.errors())
                    fail(f"{target}: {problems}", code=2)
                await repo.set_tool_settings(target, merged)
                console.print(f"[green]enabled[/] {target}")

    run(main())


@app.command("disable")
def disable(targets: list[str] = typer.Argument(..., help="actions (* wildcards)")) -> None:
    """Stop offering actions as tools, whatever their YAML says."""

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.tools import ToolInvoker

        async with Patchwire(settings()) as pw:
            repo = ToolInvoker(pw).repository
            for target in _targets(pw, targets):
                await repo.set_tool_settings(target, {"enabled": False})
                console.print(f"[yellow]disabled[/] {target}")

    run(main())


@app.command("reset")
def reset(targets: list[str] = typer.Argument(..., help="actions (* wildcards)")) -> None:
    """Forget stored tool settings: the connector YAML decides again."""

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.tools import ToolInvoker

        async with Patchwire(settings()) as pw:
            repo = ToolInvoker(pw).repository
            for target in _targets(pw, targets):
                await repo.set_tool_settings(target, None)
                console.print(f"reset {target}")

    run(main())


@app.command("audit")
def audit(
    session: str = typer.Option(None, "--session"),
    tool: str = typer.Option(None, "--tool"),
    invalid: bool = typer.Option(False, "--invalid", help="only calls with invalid arguments"),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The tool audit: recent tool calls, whether the model's arguments were valid."""

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.tools import ToolInvoker

        async with Patchwire(settings()) as pw:
            await pw.open()
            records = await ToolInvoker(pw).tool_calls(
                session_id=session, tool=tool, validation_failed=True if invalid else None,
                limit=limit)
        if as_json:
            print_json([r.to_dict() for r in records])
            return
        table = Table("when", "session", "tool", "status", "ms", "error")
        for r in records:
            colour = "green" if r.status == "ok" else "yellow" if r.status.startswith(
                "pending") else "red"
            table.add_row(r.started_at.strftime("%H:%M:%S"), escape(r.session_id or ""),
                          r.tool, f"[{colour}]{r.status}[/]", f"{r.latency_ms:.1f}",
                          escape((r.error or "").splitlines()[0][:80] if r.error else ""))
        console.print(table)

    run(main())
