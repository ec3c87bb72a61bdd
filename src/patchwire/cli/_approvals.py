"""`patchwire approvals ...`: the people's side of the approval gate."""

from __future__ import annotations

import getpass

import typer
from rich.table import Table

from patchwire.cli._common import console, escape, print_json, run, settings

app = typer.Typer(help="Approvals: grant or deny tool calls that need a person's yes.",
                  no_args_is_help=True)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in containers without /etc/passwd entry
        return "cli"


@app.command("list")
def list_approvals(
    status: str = typer.Option("pending", "--status",
                               help="pending | approved | denied | used | expired | all"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Approval requests, newest first (pending ones by default)."""

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.store.tools import ToolRepository

        async with Patchwire(settings()) as pw:
            await pw.open()
            found = await ToolRepository(pw.store).list_approvals(
                status=None if status == "all" else status, limit=limit)
        if as_json:
            print_json([a.to_dict() for a in found])
            return
        table = Table("id", "requested", "tool", "connection", "arguments", "status", "by")
        for a in found:
            table.add_row(a.id, a.requested_at.strftime("%Y-%m-%d %H:%M:%S"), a.subject,
                          escape(a.connection or "-"), escape(str(a.arguments)[:80]),
                          a.effective_status(), escape(a.decided_by or ""))
        console.print(table)

    run(main())


@app.command("show")
def show(approval_id: str = typer.Argument(...)) -> None:
    """One approval request with its arguments and decision."""

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.store.tools import ToolRepository

        async with Patchwire(settings()) as pw:
            await pw.open()
            print_json((await ToolRepository(pw.store).get_approval(approval_id)).to_dict())

    run(main())


def _decide(approval_id: str, approved: bool, reason: str | None, by: str | None) -> None:
    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.store.tools import ToolRepository

        async with Patchwire(settings()) as pw:
            await pw.open()
            rec = await ToolRepository(pw.store).decide_approval(
                approval_id, approved=approved, decided_by=_who(by), reason=reason)
        word = "[green]approved[/]" if approved else "[red]denied[/]"
        console.print(f"{word} {rec.id} ({rec.subject}) as {escape(rec.decided_by or '')}")

    run(main())


@app.command("approve")
def approve(
    approval_id: str = typer.Argument(...),
    reason: str = typer.Option(None, "--reason"),
    by: str = typer.Option(None, "--by", help="who decides (default: cli:<user>)"),
) -> None:
    """Let the pending call run: the model's next identical call goes through, once."""
    _decide(approval_id, True, reason, by)


@app.command("deny")
def deny(
    approval_id: str = typer.Argument(...),
    reason: str = typer.Option(None, "--reason", help="told to the model"),
    by: str = typer.Option(None, "--by", help="who decides (default: cli:<user>)"),
) -> None:
    """Refuse the pending call; the model is told, with the reason."""
    _decide(approval_id, False, reason, by)
