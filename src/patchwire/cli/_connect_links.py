"""`patchwire oauth-apps ...` and `patchwire connect-link`: the deployment's OAuth apps
and connect links for end users (``patchwire.connect``).

Like ``patchwire keys``, these work on the store directly: whoever can run the CLI on the
machine can already read it. A client secret is read from stdin or an environment
variable, never from the command line (where ``ps`` and shell history would show it).
"""

from __future__ import annotations

import os
import sys

import typer
from rich.table import Table

from patchwire.cli._common import console, escape, fail, print_json, run, settings

app = typer.Typer(help="OAuth apps: the deployment's OAuth2 client (id, secret, scopes) per "
                       "connector, used by connect links.", no_args_is_help=True)


@app.command("set")
def set_app(
    connector: str = typer.Argument(..., help="the connector (uses OAuth2)"),
    client_id: str = typer.Option(..., "--client-id", help="the client id the provider "
                                  "gave you"),
    secret_stdin: bool = typer.Option(False, "--client-secret-stdin",
                                      help="read the client secret from stdin"),
    secret_env: str | None = typer.Option(None, "--client-secret-env", metavar="VAR",
                                          help="read the client secret from this "
                                               "environment variable"),
    scope: list[str] = typer.Option([], "--scope", "-s",
                                    help="a scope to ask for (repeat; default: the "
                                         "connector's own)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Set (or replace) the OAuth app of CONNECTOR; the secret is stored encrypted."""
    if secret_stdin == (secret_env is not None):
        fail("give the client secret with exactly one of --client-secret-stdin or "
             "--client-secret-env VAR", code=2)
    if secret_env is not None:
        secret = os.environ.get(secret_env, "")
        if not secret:
            fail(f"environment variable {secret_env} is not set or empty", code=2)
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            fail("no client secret on stdin", code=2)

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.connect import OAuthApps

        async with Patchwire(settings()) as pw:
            try:
                found = await OAuthApps(pw.runtime).set(connector, client_id=client_id,
                                                        client_secret=secret, scopes=scope)
            except ValueError as exc:
                fail(escape(str(exc)), code=2)
        if as_json:
            print_json(found.to_dict())
            return
        scopes = " ".join(found.scopes) or "the connector's own"
        console.print(f"[green]set[/] the OAuth app of {escape(connector)} (client id "
                      f"{escape(found.client_id)}; scopes {escape(scopes)})")

    run(main())


@app.command("list")
def list_apps(as_json: bool = typer.Option(False, "--json")) -> None:
    """The OAuth apps (never their secrets)."""

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.connect import OAuthApps

        async with Patchwire(settings()) as pw:
            apps = await OAuthApps(pw.runtime).list()
        if as_json:
            print_json([a.to_dict() for a in apps])
            return
        if not apps:
            console.print("no OAuth apps (set one with `patchwire oauth-apps set CONNECTOR "
                          "--client-id ID --client-secret-stdin`)")
            return
        table = Table("connector", "client id", "scopes", "updated")
        for a in apps:
            table.add_row(escape(a.connector), escape(a.client_id), escape(" ".join(a.scopes)),
                          a.updated_at.strftime("%Y-%m-%d %H:%M"))
        console.print(table)

    run(main())


@app.command("remove")
def remove_app(connector: str = typer.Argument(...)) -> None:
    """Remove the OAuth app of CONNECTOR (its connections stop renewing their tokens)."""

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.connect import OAuthApps

        async with Patchwire(settings()) as pw:
            await OAuthApps(pw.runtime).remove(connector)
        console.print(f"[green]removed[/] the OAuth app of {escape(connector)}")

    run(main())


def connect_link(
    end_user: str = typer.Argument(..., help="the platform's own id of the end user"),
    connectors: list[str] = typer.Argument(None, help="the connectors the page offers"),
    connection: str | None = typer.Option(None, "--connection",
                                          help="reconnect this connection of theirs"),
    return_url: str | None = typer.Option(None, "--return-url",
                                          help="where the browser goes once connected"),
    minutes: int = typer.Option(30, "--minutes", min=1, max=7 * 24 * 60,
                                help="how long the link lives"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Print a single-use link END_USER opens to connect an account (built from
    PATCHWIRE_PUBLIC_URL)."""
    from datetime import timedelta

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.connect import ConnectSessions

        async with Patchwire(settings()) as pw:
            sessions = ConnectSessions(pw.runtime)
            try:
                session, token = await sessions.create(
                    end_user, connectors or [], connection=connection,
                    return_url=return_url, ttl=timedelta(minutes=minutes))
            except ValueError as exc:
                fail(escape(str(exc)), code=2)
            url = sessions.url_of(token)
        if as_json:
            print_json({"token": token, "url": url,
                        "expires_at": session.expires_at.isoformat()})
            return
        print(url)  # the link alone on stdout, for scripts

    run(main())
