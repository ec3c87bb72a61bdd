"""`patchwire keys ...`: API keys of the server (``store/keys.py``; scopes in ``access/``).

The CLI works on the store directly, so it needs no key itself: whoever can run it on the
machine can already read the store.
"""

from __future__ import annotations

import typer
from rich.table import Table

from patchwire.cli._common import console, err_console, escape, fail, print_json, run, settings

app = typer.Typer(help="API keys for the server: scopes read, run, approve, connect, admin.",
                  no_args_is_help=True)

SCOPE_HELP = ("read (GET anything), run (call actions and tools; start, retry, cancel runs), "
              "approve (decide approvals), connect (end-user tokens and connect links), "
              "admin (keys, connections, subscriptions, webhook sources: everything); "
              "repeat for several")


@app.command("create")
def create(
    name: str = typer.Argument(..., help="who or what uses the key (e.g. grafana, chatbot)"),
    scope: list[str] = typer.Option(..., "--scope", "-s", help=SCOPE_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a key and print it, once: only a digest of it is stored."""
    from patchwire.server import check_key_name, check_scopes

    # checked here too (KeyRepository.create checks again) to refuse before opening the store
    try:
        scopes = check_scopes(s.strip().lower() for item in scope for s in item.split(","))
        name = check_key_name(name)
    except ValueError as exc:
        fail(str(exc), code=2)

    async def main() -> None:
        from patchwire.server import KeyRepository
        from patchwire.store import Store

        async with await Store.open(settings().effective_database_url) as store:
            record, text = await KeyRepository(store).create(name, scopes)
        if as_json:
            print_json({**record.to_dict(), "key": text})
            return
        console.print(f"[green]created[/] key {record.id} ({escape(record.name)}) with scopes "
                      f"{', '.join(record.scopes)}")
        # the key alone on stdout, so `KEY=$(patchwire keys create ... 2>/dev/null)` works
        print(text)
        err_console.print("Store it now: it is not shown again. Send it as "
                          "'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")

    run(main())


@app.command("list")
def list_keys(
    all_keys: bool = typer.Option(False, "--all", help="include revoked keys"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The keys (never their secrets)."""

    async def main() -> None:
        from patchwire.server import KeyRepository
        from patchwire.store import Store

        async with await Store.open(settings().effective_database_url) as store:
            keys = await KeyRepository(store).list(include_revoked=all_keys)
        if as_json:
            print_json([k.to_dict() for k in keys])
            return
        if not keys:
            console.print("no API keys: the server binds loopback only and needs no key "
                          "(create one with `patchwire keys create NAME --scope admin`)")
            return
        table = Table("id", "name", "scopes", "created", "last used", "revoked")
        for k in keys:
            table.add_row(k.id, escape(k.name), ",".join(k.scopes),
                          k.created_at.strftime("%Y-%m-%d %H:%M"),
                          k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "-",
                          k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "")
        console.print(table)

    run(main())


@app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="the key's id (see `patchwire keys list`)")
           ) -> None:
    """Revoke a key: a running server refuses it within a second."""

    async def main() -> None:
        from patchwire.server import KeyRepository
        from patchwire.store import Store

        async with await Store.open(settings().effective_database_url) as store:
            record = await KeyRepository(store).revoke(key_id)
        console.print(f"[green]revoked[/] key {record.id} ({escape(record.name)})")

    run(main())
