"""`patchwire mcp`: the tools for an MCP client over stdio.

The client starts this command and speaks MCP on its stdin and stdout, so nothing else may
ever be written to stdout: logs and errors go to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import sys

import typer

from patchwire.cli._common import fail, run, settings

_LEVELS = ("debug", "info", "warning", "error")


def mcp(
    connection: list[str] = typer.Option(
        None, "--connection", "-c",
        help="offer tools of this connection only (repeatable; default: every connection)"),
    tag: list[str] = typer.Option(None, "--tag", help="only tools with this tag (repeatable)"),
    connector: list[str] = typer.Option(
        None, "--connector", help="only tools of this connector (repeatable)"),
    read_only: bool = typer.Option(False, "--read-only", help="only tools that change nothing"),
    log_level: str = typer.Option("warning", "--log-level", help="stderr log level: "
                                  + ", ".join(_LEVELS)),
) -> None:
    """Serve the tools to an MCP client over stdin/stdout (the stdio transport).

    Example client configuration: command `patchwire`, arguments `mcp --connection acme`.
    """
    level = log_level.lower()
    if level not in _LEVELS:
        fail(f"--log-level must be one of {', '.join(_LEVELS)}, not {log_level!r}", code=2)
    logging.basicConfig(stream=sys.stderr, level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.tools import ToolFilter, ToolInvoker, serve_stdio

        tool_filter = ToolFilter(
            connectors=frozenset(connector) if connector else None,
            tags=frozenset(tag) if tag else None, read_only=read_only)
        from patchwire.flows import FlowRegistry, create_engine

        cfg = settings()
        async with Patchwire(cfg) as pw:
            # Flow tools run here, durably; this process runs only the runs it starts, and
            # what it leaves waiting (an approval, a timer) a worker or `serve` resumes.
            # With the Temporal engine, runs go to Temporal's workers instead.
            engine = create_engine(pw, FlowRegistry.load(cfg.flow_paths).as_mapping(),
                                   schedules=False, claims=False)
            invoker = ToolInvoker(pw, connections=connection or None, filter=tool_filter,
                                  engine=engine)
            # Build the catalog now so an unknown --connection is an error on stderr and
            # exit status 1, not a server that fails every request.
            catalog = await invoker.catalog()
            logging.getLogger("patchwire.mcp").info("serving %d tool(s) over stdio",
                                                    len(catalog))
            async with engine:
                await serve_stdio(invoker)

    with contextlib.suppress(KeyboardInterrupt):
        run(main())
