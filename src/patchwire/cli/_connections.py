"""`patchwire connection ...`: add, list, show, update, remove.

Secret values never have to appear on the command line (where shell history and ``ps``
would see them): ``--set-env key=VAR`` reads an environment variable, ``--set-stdin key``
reads standard input, and missing secrets are prompted for without echo on a terminal.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from patchwire.cli._common import console, err_console, escape, fail, print_json, run, settings
from patchwire.connectors import ConnectorRegistry

if TYPE_CHECKING:
    from patchwire import ConnectionInfo, ConnectionTest, Patchwire

app = typer.Typer(help="Connections: credentials for a connector, optionally per end user.",
                  no_args_is_help=True)


def _pairs(items: list[str] | None, option: str) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            fail(f"{option} expects key=value, got {item!r}", code=2)
        out.append((key.strip(), value))
    return out


def gather_values(
    connector: str,
    set_: list[str] | None,
    set_env: list[str] | None,
    set_stdin: list[str] | None,
    *,
    prompt_missing: bool = True,
) -> dict[str, Any]:
    values: dict[str, Any] = dict(_pairs(set_, "--set"))
    for key, var in _pairs(set_env, "--set-env"):
        if var not in os.environ:
            fail(f"--set-env {key}={var}: environment variable {var} is not set", code=2)
        values[key] = os.environ[var]
    stdin_keys = list(set_stdin or [])
    if stdin_keys:
        if sys.stdin.isatty() and len(stdin_keys) == 1:
            values[stdin_keys[0]] = typer.prompt(stdin_keys[0], hide_input=True)
        elif len(stdin_keys) == 1:
            # one key takes all of standard input: a PEM key or a service-account JSON
            # file spans many lines (`--set-stdin key < key.pem`)
            text = sys.stdin.read().rstrip("\r\n")
            if not text:
                fail(f"--set-stdin: expected 1 line(s) on standard input ({stdin_keys[0]}), "
                     "got 0", code=2)
            values[stdin_keys[0]] = text
        else:
            lines = sys.stdin.read().splitlines()
            if len(lines) < len(stdin_keys):
                fail(f"--set-stdin: expected {len(stdin_keys)} line(s) on standard input "
                     f"({', '.join(stdin_keys)}), got {len(lines)}", code=2)
            values.update(zip(stdin_keys, lines, strict=False))
    if prompt_missing and sys.stdin.isatty():
        reg = ConnectorRegistry.load(settings().connector_paths)
        if connector in reg:
            for key, spec in reg.get(connector).settings.items():
                if spec.secret and spec.required and spec.default is None and key not in values:
                    values[key] = typer.prompt(f"{key} ({spec.description or 'secret'})",
                                               hide_input=True)
    return values


@app.command("add")
def add(
    connector: str = typer.Argument(..., help="connector name, e.g. shop"),
    name: str = typer.Option(..., "--name", help="connection name, e.g. acme"),
    end_user: str = typer.Option(None, "--end-user", "--owner",
                                 help="the end user it belongs to, e.g. user:123"),
    label: str = typer.Option(None, "--label",
                              help="tells apart one end user's connections of one "
                                   "connector, e.g. work"),
    set_: list[str] = typer.Option(None, "--set", help="key=value (avoid for secrets)"),
    set_env: list[str] = typer.Option(None, "--set-env", help="key=ENV_VAR"),
    set_stdin: list[str] = typer.Option(None, "--set-stdin", help="key read from stdin"),
    test: bool = typer.Option(
        False, "--test", help="make the connector's test call first; on failure the "
                              "connection is not saved"),
) -> None:
    """Add a connection. Secret values are encrypted at rest and never shown back."""
    values = gather_values(connector, set_, set_env, set_stdin)

    async def main() -> None:
        from patchwire import Patchwire

        async with Patchwire(settings()) as pw:
            if test and pw.connectors.get(connector).test is None:
                fail(f"connector {connector!r} declares no test call (`test:` in its spec); "
                     "add the connection without --test and try a read action with "
                     "`patchwire call`")
            device = _uses_device_code(pw, connector)
            if test and not device:
                # the facade tests through the stored connection and keeps nothing (tells
                # no subscriber of it) when the call fails
                info = await _added_tested(pw, connector, name, values, end_user, label)
            else:
                info = await pw.add_connection(connector, name, values, end_user=end_user,
                                               label=label)
            if device:
                # tokens first (a person approves), then the test call can use them
                await _device_authorized(pw, name)
                if test and not await _tested(pw, name):
                    await pw.remove_connection(name)
                    fail(f"connection {escape(name)} not saved: fix the values and add it "
                         "again")
        secrets = ", ".join(info.secrets_set) or "none"
        console.print(f"[green]added[/] connection {escape(info.name)} for {info.connector} "
                      f"(secrets stored encrypted: {escape(secrets)})")

    run(main())


async def _added_tested(pw: Patchwire, connector: str, name: str, values: dict[str, Any],
                        end_user: str | None, label: str | None) -> ConnectionInfo:
    """Add connection ``name`` once its test call succeeded; exits saying why not."""
    from patchwire.errors import AuthError, CallError

    try:
        info, result = await pw.add_tested_connection(connector, name, values,
                                                      end_user=end_user, label=label)
    except AuthError as exc:
        err_console.print(f"[bold red]failed:[/] the upstream refused the credentials of "
                          f"connection {escape(name)} (HTTP {exc.status}): "
                          f"{escape(exc.message)}", highlight=False)
    except CallError as exc:
        err_console.print(f"[bold red]failed:[/] {exc.code}: {escape(str(exc))}",
                          highlight=False)
    else:
        _say_ok(result)
        return info
    fail(f"connection {escape(name)} not saved: fix the values and add it again")


def _uses_device_code(pw: Patchwire, connector: str) -> bool:
    from patchwire.connectors.spec import OAuth2Auth

    auth = pw.connectors.get(connector).auth
    return isinstance(auth, OAuth2Auth) and auth.flow == "device_code"


async def _device_authorized(pw: Patchwire, name: str, *,
                             keep_on_failure: bool = False) -> None:
    """The OAuth2 device flow (RFC 8628) for connection ``name``: print where to go and
    the code to enter, wait (bounded by the code's expiry) for a person to approve. When
    nobody does, a new connection is not kept (``keep_on_failure``: an existing one is).
    Then the connection's next use (or ``needs_reauth`` mark) starts from these tokens."""
    from patchwire.auth import DeviceAuthorization
    from patchwire.errors import OAuthError

    def show(device: DeviceAuthorization) -> None:
        # both were checked (an http(s) URL, a short code of letters and digits): nothing
        # the endpoint sent can carry terminal escapes or markup
        console.print("On any device, open this URL and enter the code:", highlight=False)
        print(device.verification_uri, flush=True)
        print(f"code: {device.user_code}", flush=True)
        if device.verification_uri_complete:
            print(f"(or open {device.verification_uri_complete})", flush=True)

    try:
        await pw.runtime.tokens.authorize_device(name, on_code=show)
    except OAuthError as exc:
        if keep_on_failure:
            fail(f"connection {escape(name)} not authorised: {escape(exc.message)}")
        await pw.remove_connection(name)
        fail(f"connection {escape(name)} not saved: {escape(exc.message)}")
    await pw.store.set_connection_state(name, needs_reauth=False)  # authorised anew
    pw.calls.forget(name)
    console.print(f"[green]authorised[/] {escape(name)}: tokens stored encrypted")


def _say_ok(result: ConnectionTest) -> None:
    console.print(f"[green]ok[/]: {result.action} answered {result.status} in "
                  f"{result.latency_ms:.0f} ms", highlight=False)


async def _tested(pw: Patchwire, name: str) -> bool:
    """Make connection ``name``'s test call and say how it went (never a secret: errors
    carry redacted upstream excerpts only)."""
    from patchwire.errors import AuthError, CallError

    try:
        result = await pw.test_connection(name)
    except AuthError as exc:
        err_console.print(f"[bold red]failed:[/] the upstream refused the credentials of "
                          f"connection {escape(name)} (HTTP {exc.status}): "
                          f"{escape(exc.message)}", highlight=False)
        return False
    except CallError as exc:
        err_console.print(f"[bold red]failed:[/] {exc.code}: {escape(str(exc))}",
                          highlight=False)
        return False
    _say_ok(result)
    return True


@app.command("test")
def test_(name: str = typer.Argument(..., help="connection name")) -> None:
    """Prove a connection's credentials with one cheap call (its connector's `test:`)."""

    async def main() -> bool:
        from patchwire import Patchwire

        async with Patchwire(settings()) as pw:
            return await _tested(pw, name)

    if not run(main()):
        raise typer.Exit(1)


@app.command("connect")
def connect(
    connector: str = typer.Argument(..., help="an oauth2 connector"),
    name: str = typer.Option(..., "--name", help="connection name (created if missing)"),
    end_user: str = typer.Option(None, "--end-user", "--owner",
                                 help="the end user it belongs to, e.g. user:123"),
    set_: list[str] = typer.Option(None, "--set", help="key=value (e.g. client_id=...)"),
    set_env: list[str] = typer.Option(None, "--set-env", help="key=ENV_VAR"),
    set_stdin: list[str] = typer.Option(None, "--set-stdin", help="key read from stdin"),
    port: int = typer.Option(0, "--port", help="loopback port for the redirect (0: any)"),
    timeout: float = typer.Option(300.0, "--timeout", help="seconds to wait for consent"),
) -> None:
    """Authorise an OAuth2 connection: open the printed URL, approve, done.

    The provider redirects to a one-shot listener on 127.0.0.1; tokens are stored
    encrypted with the connection and renewed automatically afterwards.
    """
    values = gather_values(connector, set_, set_env, set_stdin, prompt_missing=False)

    async def main() -> None:
        from patchwire import Patchwire
        from patchwire.errors import UnknownConnection

        async with Patchwire(settings()) as pw:
            try:
                existing = await pw.get_connection(name)
            except UnknownConnection:
                await pw.add_connection(connector, name, values, end_user=end_user)
            else:
                if existing.connector != connector:
                    fail(f"connection {name!r} belongs to connector {existing.connector!r}")
                if values:
                    await pw.update_connection(name, values)

            def show(url: str) -> None:
                console.print("Open this URL in a browser and approve access:")
                print(url, flush=True)

            if _uses_device_code(pw, connector):
                await _device_authorized(pw, name, keep_on_failure=True)
            else:
                await pw.authorize(name, on_url=show, port=port, consent_timeout=timeout)
                console.print(f"[green]connected[/] {escape(name)}: tokens stored encrypted")

    run(main())


@app.command("update")
def update(
    name: str,
    set_: list[str] = typer.Option(None, "--set", help="key=value"),
    set_env: list[str] = typer.Option(None, "--set-env", help="key=ENV_VAR"),
    set_stdin: list[str] = typer.Option(None, "--set-stdin", help="key read from stdin"),
    label: str = typer.Option(None, "--label",
                              help='tells apart one end user\'s connections of one '
                                   'connector, e.g. work ("" removes it)'),
) -> None:
    """Change some values of a connection (the others are kept), or its label."""
    values = gather_values("", set_, set_env, set_stdin, prompt_missing=False)
    if not values and label is None:
        fail("nothing to change: give --set, --set-env, --set-stdin or --label", code=2)

    async def main() -> None:
        from patchwire import Patchwire

        async with Patchwire(settings()) as pw:
            info = await pw.update_connection(name, values, label=label)
        console.print(f"[green]updated[/] connection {escape(info.name)}")

    run(main())


@app.command("default")
def default(name: str = typer.Argument(..., help="connection name")) -> None:
    """Make a connection the one its end user's calls of its connector use when they
    name none (the others of that end user and connector stop being it)."""

    async def main() -> None:
        from patchwire import Patchwire

        async with Patchwire(settings()) as pw:
            info = await pw.set_default_connection(name)
        who = f"end user {escape(info.end_user)}" if info.end_user else "the operator"
        console.print(f"[green]default[/] {escape(info.name)} is {who}'s {info.connector} "
                      "connection")

    run(main())


@app.command("list")
def list_(
    connector: str = typer.Option(None, "--connector"),
    end_user: str = typer.Option(None, "--end-user", "--owner",
                                 help="only this end user's connections"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List connections (never their secrets)."""

    async def main() -> None:
        from patchwire import Patchwire

        async with Patchwire(settings()) as pw:
            infos = await pw.list_connections(connector=connector, end_user=end_user)
        if as_json:
            print_json([i.to_dict() for i in infos])
            return
        table = Table("name", "connector", "end user", "settings", "secrets", "updated")
        for i in infos:
            holder = escape(i.end_user or "") + (f" ({escape(i.label)})" if i.label else "")
            table.add_row(escape(i.name), i.connector, holder,
                          escape(", ".join(f"{k}={v}" for k, v in i.settings.items())),
                          ", ".join(i.secrets_set) + (" (set)" if i.secrets_set else ""),
                          i.updated_at.strftime("%Y-%m-%d %H:%M"))
        console.print(table)

    run(main())


@app.command("show")
def show(name: str) -> None:
    """Show one connection as JSON (secret values are never shown)."""

    async def main() -> None:
        from patchwire import Patchwire

        async with Patchwire(settings()) as pw:
            print_json((await pw.get_connection(name)).to_dict())

    run(main())


@app.command("remove")
def remove(
    name: str, yes: bool = typer.Option(False, "--yes", "-y", help="no confirmation")
) -> None:
    """Remove a connection and its encrypted secrets."""
    if not yes and sys.stdin.isatty():
        typer.confirm(f"remove connection {name!r}?", abort=True)

    async def main() -> None:
        from patchwire import Patchwire

        async with Patchwire(settings()) as pw:
            await pw.remove_connection(name)
        console.print(f"[green]removed[/] connection {escape(name)}")

    run(main())
