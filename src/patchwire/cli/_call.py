"""`patchwire call ACTION key=value ...` and `patchwire calls` (the call log)."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.table import Table

from patchwire.cli._common import console, err_console, escape, fail, print_json, run, settings
from patchwire.errors import UnknownConnection


def coerce_arguments(pairs: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` pairs typed by the input schema; ``key:=json`` gives raw JSON."""
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    out: dict[str, Any] = {}
    for item in pairs:
        head, eq, raw = item.partition("=")
        if head.endswith(":") and len(head) > 1:
            key = head[:-1]
            try:
                out[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                fail(f"argument {key}: {raw!r} is not valid JSON ({exc.msg})", code=2)
            continue
        if not eq or not head:
            fail(f"arguments are key=value or key:=json, got {item!r}", code=2)
        out[head] = _typed(raw, props.get(head, {}))
    return out


def _typed(value: str, prop: dict[str, Any]) -> Any:
    types = prop.get("type")
    types = types if isinstance(types, list) else [types]
    if "string" in types or types == [None]:
        return value
    try:
        if "integer" in types:
            return int(value)
        if "number" in types:
            return float(value)
    except ValueError:
        return value  # validation will say what was expected, with the path
    if "boolean" in types and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if {"object", "array", "null"} & set(types):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def call(
    action: str = typer.Argument(..., help="connector.action, e.g. shop.get_order"),
    arguments: list[str] = typer.Argument(None, help="key=value or key:=json"),
    connection: str = typer.Option(None, "--connection", "-c",
                                   help="connection name (default: the connector's only one)"),
    input_json: str = typer.Option(None, "--input", "-i",
                                   help="arguments as a JSON object, or - for stdin"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="status, attempts, timing"),
) -> None:
    """Call an action and print its result as JSON."""

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.calls import CallRequest

        async with Patchwire(settings()) as pw:
            compiled = pw.calls.action(action)
            args: dict[str, Any] = {}
            if input_json:
                text = sys.stdin.read() if input_json == "-" else input_json
                try:
                    loaded = json.loads(text)
                except json.JSONDecodeError as exc:
                    fail(f"--input is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}", code=2)
                if not isinstance(loaded, dict):
                    fail("--input must be a JSON object", code=2)
                args.update(loaded)
            args.update(coerce_arguments(arguments or [], compiled.spec.input))
            try:
                outcome = await pw.calls.execute(CallRequest(action, args, connection))
            except UnknownConnection as exc:
                if connection is None:
                    raise  # the message already says which connections there are
                connector = compiled.connector.name
                names = [i.name for i in await pw.list_connections(connector)]
                known = (f"connections for {connector}: {', '.join(names)}" if names else
                         f"{connector} has no connection yet; add one with `patchwire "
                         f"connection add {connector} --name NAME`")
                fail(f"{escape(str(exc))} ({escape(known)})")
        print_json(outcome.result)
        if verbose:
            err_console.print(f"HTTP {outcome.status} · {outcome.attempts} attempt(s) · "
                              f"{outcome.latency_ms:.1f} ms · request {outcome.request_id}")

    run(main())


def calls(
    action: str = typer.Option(None, "--action"),
    connection: str = typer.Option(None, "--connection"),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the most recent calls from the call log."""

    async def main() -> None:
        from patchwire import Patchwire

        async with Patchwire(settings()) as pw:
            records = await pw.recent_calls(action=action, connection=connection, limit=limit)
        if as_json:
            print_json([r.to_dict() for r in records])
            return
        table = Table("when", "action", "connection", "status", "http", "attempts", "ms",
                      "waited ms", "error")
        table.columns[1].no_wrap = True
        for r in records:
            # waited: for rate limits, the concurrency cap and 429 pauses (blank: no wait)
            table.add_row(r.started_at.strftime("%H:%M:%S"), r.action, escape(r.connection or ""),
                          "[green]ok[/]" if r.status == "ok" else "[red]error[/]",
                          str(r.http_status or ""), str(r.attempts), f"{r.latency_ms:.1f}",
                          f"{r.rate_limit_wait_ms:.1f}" if r.rate_limit_wait_ms else "",
                          escape(r.error_class or ""))
        console.print(table)

    run(main())
