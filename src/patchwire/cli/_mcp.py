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
    end_user: str | None = typer.Option(
        None, "--end-user", help="serve this end user's tools: every call goes through "
        "their connections only, a connector they have not connected answers with a "
        "connect link"),
    log_level: str = typer.Option("warning", "--log-level", help="stderr log level: "
                                  + ", ".join(_LEVELS)),
    mode: str | None = typer.Option(
        None, "--mode", help="all: list every tool; search: list two meta-tools, "
        "search_tools and call_tool, for catalogs too big to list (default: the "
        "settings' tool_mode)"),
) -> None:
    """Serve the tools to an MCP client over stdin/stdout (the stdio transport).

    Example client configuration: command `patchwire`, arguments `mcp --connection acme`
    (an operator's connection) or `mcp --end-user u1` (an end user's tools); add
    `--mode search` to offer search_tools and call_tool instead of every tool.
    """
    if mode is not None and mode not in ("all", "search"):
        fail(f"--mode must be all or search, not {mode!r}", code=2)
    level = log_level.lower()
    if level not in _LEVELS:
        fail(f"--log-level must be one of {', '.join(_LEVELS)}, not {log_level!r}", code=2)
    if end_user is not None:
        from patchwire.store.end_users import check_end_user

        try:
            check_end_user(end_user)
        except ValueError as exc:
            fail(f"--end-user: {exc}", code=2)
        if connection:
            # an end user's tools use their own connections, chosen by Patchwire
            fail("--connection and --end-user cannot be combined: an end user's tools go "
                 "through that end user's connections", code=2)
    logging.basicConfig(stream=sys.stderr, level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.tools import ToolFilter, ToolInvoker, check_tool_mode, serve_stdio

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
            from patchwire.connect import ConnectSessions

            # an account the end user has not connected: a link to `patchwire serve`'s
            # /connect pages (at the deployment's public URL)
            invoker = ToolInvoker(pw, connections=connection or None, filter=tool_filter,
                                  engine=engine, links=ConnectSessions(pw.runtime))
            if end_user is not None:
                invoker = invoker.for_end_user(end_user)
            # Build the catalog now so an unknown --connection is an error on stderr and
            # exit status 1, not a server that fails every request.
            catalog = await invoker.catalog()
            logging.getLogger("patchwire.mcp").info("serving %d tool(s) over stdio",
                                                    len(catalog))
            async with engine:
                await serve_stdio(invoker, mode=check_tool_mode(mode) if mode else None)

    with contextlib.suppress(KeyboardInterrupt):
        run(main())
