"""`patchwire sync ...` and `patchwire records ...`: syncs and the records they keep.

Syncs come from ``syncs/`` (``settings.sync_paths``); the shipped examples are templates,
used with ``--examples`` (or copied into ``syncs/`` with ``sync example ID``). A `sync run`
polls in this process now; scheduled polls run in ``patchwire serve``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from patchwire.cli._common import (
    console,
    err_console,
    escape,
    fail,
    print_json,
    run,
    settings,
)

if TYPE_CHECKING:
    from patchwire.sync import SyncRegistry

__all__ = ["app", "records_app"]

app = typer.Typer(help="Syncs: upstream records copied into the store and kept current.",
                  no_args_is_help=True)
records_app = typer.Typer(help="Records kept by syncs (read from the store, no upstream call).",
                          no_args_is_help=True)

_EXAMPLES = typer.Option(False, "--examples", help="include the shipped example syncs")
_JSON = typer.Option(False, "--json", help="print JSON")


def _registry(examples: bool) -> SyncRegistry:
    from patchwire.sync import SyncRegistry

    reg = SyncRegistry.load(settings().sync_paths, builtins=examples)
    for p in reg.problems:  # a broken file must not hide the syncs that load
        err_console.print(f"[yellow]warning:[/] {escape(str(p))}", highlight=False)
    return reg


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_syncs(examples: bool = _EXAMPLES, as_json: bool = _JSON) -> None:
    """The syncs defined in syncs/ (and the examples with --examples)."""
    reg = _registry(examples)
    rows = [{**s.summary(), "source": reg.source_of(s.id)} for s in reg]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no syncs: add one to syncs/ (see `patchwire sync list --examples` and "
                      "`patchwire sync example ID`)")
        return
    table = Table("id", "model", "action", "mode", "schedule", "reconcile", "tool")
    for r in rows:
        table.add_row(r["id"], r["model"], r["action"], r["mode"], r["schedule"]["cron"],
                      (r["reconcile"] or {}).get("cron", "-"), r["tool"] or "-")
    console.print(table)


@app.command("example")
def show_example(sync_id: str = typer.Argument(..., help="e.g. shop_customers")) -> None:
    """Print a shipped example (redirect it into syncs/ to use it)."""
    from patchwire.sync import builtin_sync_texts

    for name, text in builtin_sync_texts():
        if name.rsplit("/", 1)[-1].rsplit(".", 1)[0] == sync_id:
            sys.stdout.write(text)
            return
    known = ", ".join(n.rsplit("/", 1)[-1].rsplit(".", 1)[0] for n, _ in builtin_sync_texts())
    fail(f"no example sync {sync_id!r} (examples: {known})")


@app.command("check")
def check() -> None:
    """Check every sync file (shape, expressions, cron, actions); file:line problems."""
    from patchwire.connectors import ConnectorRegistry

    reg = _registry(False)
    problems = [*reg.problems,
                *reg.check_references(ConnectorRegistry.load(settings().connector_paths))]
    if problems:
        for p in problems:
            err_console.print(f"  {p}", highlight=False, markup=False)
        fail(f"{len(problems)} problem(s)")
    console.print(f"{len(reg)} sync(s) OK")


@app.command("run")
def run_sync(
    sync_id: str = typer.Argument(..., help="the sync's id"),
    full: bool = typer.Option(False, "--full", help="reconcile: list everything, find "
                                                    "deletes"),
    connection: str | None = typer.Option(None, "--connection", "-c",
                                          help="one connection (default: every one)"),
    examples: bool = _EXAMPLES,
    as_json: bool = _JSON,
) -> None:
    """Poll a sync now (incrementally; --full reconciles) and show what changed."""
    from patchwire import Patchwire
    from patchwire.sync import SyncEngine

    reg = _registry(examples)

    async def main() -> list[dict[str, Any]]:
        async with Patchwire(settings()) as pw:
            engine = SyncEngine(pw, reg)
            engine.sync(sync_id)  # unknown ids fail before any connection lookup
            outcomes = await engine.run(sync_id, connection=connection, full=full)
            return [o.to_dict() for o in outcomes]

    rows = run(main())
    if as_json:
        print_json(rows)
    elif not rows:
        console.print(f"{sync_id}: no connection to sync (add one of its connector)")
    for r in rows if not as_json else []:
        line = (f"{r['sync']} ({r['connection']}) {r['kind']}: {r['status']}; "
                f"{r['created']} created, {r['updated']} updated, {r['deleted']} deleted, "
                f"{r['unchanged']} unchanged; {r['events']} event(s)")
        console.print(escape(line) + (f"\n  [red]{escape(r['error'])}[/]" if r["error"] else ""))
    if any(r["status"] != "ok" for r in rows):
        raise typer.Exit(1)


@app.command("status")
def status(examples: bool = _EXAMPLES, as_json: bool = _JSON) -> None:
    """Where each sync stands per connection: cursor, last poll, records, next poll."""
    from patchwire import Patchwire
    from patchwire.sync import SyncEngine

    reg = _registry(examples)

    async def main() -> list[dict[str, Any]]:
        async with Patchwire(settings()) as pw:
            return [s.to_dict() for s in await SyncEngine(pw, reg).status()]

    rows = run(main())
    if as_json:
        print_json(rows)
        return
    table = Table("sync", "connection", "records", "deleted", "last poll", "status",
                  "next poll", "cursor")
    for r in rows:
        cursor = r["cursor"]
        table.add_row(r["sync"], r["connection"], str(r["records"]), str(r["deleted"]),
                      _when(r["last_poll_at"]), escape(r["last_status"] or "never"),
                      _when(r["next_poll_at"]),
                      escape("-" if cursor is None else str(cursor))[:40])
    console.print(table)


@records_app.command("list")
def list_records(
    model: str = typer.Option(..., "--model", "-m", help="e.g. customer"),
    connection: str | None = typer.Option(None, "--connection", "-c"),
    query: str | None = typer.Option(None, "--query", "-q", help="words, all present"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    include_deleted: bool = typer.Option(False, "--include-deleted"),
    as_json: bool = _JSON,
) -> None:
    """Synced records of one model, from the store."""
    from patchwire import Patchwire
    from patchwire.sync import RecordStore

    async def main() -> list[dict[str, Any]]:
        async with Patchwire(settings()) as pw:
            records, _ = await RecordStore(pw.store).search(
                model, connection=connection, query=query, limit=limit,
                include_deleted=include_deleted)
            return [r.to_dict() for r in records]

    rows = run(main())
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no synced {escape(model)} records match")
        return
    table = Table("connection", "id", "version", "updated", "data")
    for r in rows:
        data = r["data"]
        summary = ", ".join(f"{k}={v}" for k, v in data.items()
                            if isinstance(v, str | int | float))[:80] \
            if isinstance(data, dict) else str(data)[:80]
        table.add_row(r["connection"], r["id"] + (" (deleted)" if r["deleted"] else ""),
                      str(r["version"]), _when(r["updated_at"]), escape(summary))
    console.print(table)
