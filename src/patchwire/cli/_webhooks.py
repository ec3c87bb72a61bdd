"""`patchwire webhooks ...`: webhook sources, the inbox, rejected requests, replays.

Secrets never travel on the command line (shell history, ``ps`` would see them):
``--secret-env VAR`` reads an environment variable, ``--secret-stdin`` the first line of
standard input (a hidden prompt on a terminal). Nothing here prints a secret back.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import typer
from rich.table import Table

from patchwire.cli._common import console, escape, fail, print_json, run, settings

if TYPE_CHECKING:
    from patchwire import Patchwire
    from patchwire.webhooks import Inbox, WebhookSource, WebhookSources

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(help="Inbound webhooks: sources, the inbox, rejections, replays.",
                  no_args_is_help=True)
source_app = typer.Typer(help="Webhook sources: who may post to /hooks/NAME, verified how.",
                         no_args_is_help=True)
app.add_typer(source_app, name="source")

Scheme = Literal["standard", "stripe", "github", "slack", "shopify", "hmac"]
_STATUS_STYLE = {"processed": "green", "failed": "red", "pending": "yellow"}


def _secret(env: str | None, stdin: bool) -> str:
    if bool(env) == stdin:
        fail("give the secret with exactly one of --secret-env VAR or --secret-stdin", code=2)
    if env:
        value = os.environ.get(env)
        if not value:
            fail(f"environment variable {env} is not set or empty", code=2)
        return value
    if sys.stdin.isatty():
        return str(typer.prompt("secret", hide_input=True))
    line = sys.stdin.readline().strip()
    if not line:
        fail("--secret-stdin: standard input is empty", code=2)
    return line


def _with_pw(work: Callable[[Patchwire], Awaitable[T]]) -> T:
    from patchwire import Patchwire

    async def main() -> T:
        async with Patchwire(settings()) as pw:
            return await work(pw)

    return run(main())


def _sources(pw: Patchwire) -> WebhookSources:
    from patchwire.webhooks import WebhookSources

    return WebhookSources(pw)


def _inbox(pw: Patchwire) -> Inbox:
    from patchwire.webhooks import Inbox

    return Inbox(pw)


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _grace(text: str) -> float:
    from patchwire.flows.spec import parse_duration
    from patchwire.webhooks import MAX_GRACE_S

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        fail(f"--grace: {exc}", code=2)
    if not 0 <= seconds <= MAX_GRACE_S:
        fail(f"--grace: at most a year ({MAX_GRACE_S:g}s), got {escape(text)!r}", code=2)
    return seconds


def _print_source(source: WebhookSource) -> None:
    d = source.to_dict()
    console.print(f"[bold]{escape(source.name)}[/]  POST {d['url_path']}  "
                  f"({'enabled' if source.enabled else '[red]disabled[/]'})")
    for key, value in d["scheme"].items():
        console.print(f"  {key}: {escape(str(value))}", highlight=False)
    console.print(f"  event id: {escape(source.event_id_path or '(the scheme default)')}",
                  highlight=False)
    console.print(f"  event type: {escape(source.event_type_path or '(the scheme default)')}",
                  highlight=False)
    console.print(f"  max body: {source.max_body_bytes} bytes")
    for n, secret in enumerate(d["secrets"], start=1):
        expiry = f"expires {_when(secret['expires_at'])}" if secret["expires_at"] else "active"
        console.print(f"  secret {n}: added {_when(secret['added_at'])}, {expiry}")


@source_app.command("add")
def add_source(
    name: str = typer.Argument(..., help="the source's name: events go to /hooks/NAME"),
    scheme: Scheme = typer.Option(..., "--scheme", help="how requests are signed"),
    secret_env: str = typer.Option(None, "--secret-env", help="read the secret from this "
                                                              "environment variable"),
    secret_stdin: bool = typer.Option(False, "--secret-stdin", help="read the secret from "
                                                                    "standard input"),
    tolerance: int = typer.Option(300, "--tolerance", min=1,
                                  help="seconds a signed timestamp may be off"),
    event_id: str = typer.Option(None, "--event-id", help="JSONata over the payload for the "
                                                          "dedupe key ($headers bound)"),
    event_type: str = typer.Option(None, "--event-type", help="JSONata for the event type"),
    max_body: int = typer.Option(1 << 20, "--max-body", min=1, help="largest body, bytes"),
    header: str = typer.Option(None, "--header", help="hmac: the signature header"),
    algorithm: str = typer.Option(None, "--algorithm", help="hmac: sha1|sha256|sha512"),
    encoding: str = typer.Option(None, "--encoding", help="hmac: hex|base64"),
    prefix: str = typer.Option(None, "--prefix", help="hmac: text before the MAC"),
    signed_content: str = typer.Option(None, "--signed-content",
                                       help="hmac: e.g. '{timestamp}.{body}'"),
    timestamp_header: str = typer.Option(None, "--timestamp-header", help="hmac"),
    id_header: str = typer.Option(None, "--id-header", help="hmac: the event id header"),
) -> None:
    """Add a webhook source (its secret stored encrypted)."""
    from pydantic import ValidationError

    from patchwire.webhooks import SchemeSettings

    options = {"header": header, "algorithm": algorithm, "encoding": encoding,
               "prefix": prefix, "signed_content": signed_content,
               "timestamp_header": timestamp_header, "id_header": id_header}
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if tolerance != 300:
        given["tolerance_s"] = tolerance
    try:
        settings_ = SchemeSettings(scheme=scheme, **given)
    except ValidationError as exc:
        fail("; ".join(escape(str(e["msg"])) for e in exc.errors()), code=2)
    secret = _secret(secret_env, secret_stdin)

    async def work(pw: Patchwire) -> WebhookSource:
        return await _sources(pw).add(name, settings_, [secret], event_id=event_id,
                                      event_type=event_type, max_body_bytes=max_body)

    source = _with_pw(work)
    console.print(f"[green]added[/] webhook source {escape(source.name)} ({scheme}): "
                  f"events go to POST /hooks/{escape(source.name)}; secret stored encrypted")


@source_app.command("list")
def list_sources(as_json: bool = typer.Option(False, "--json")) -> None:
    """Webhook sources (never their secrets)."""

    async def work(pw: Patchwire) -> list[WebhookSource]:
        return await _sources(pw).list()

    sources = _with_pw(work)
    if as_json:
        print_json([s.to_dict() for s in sources])
        return
    if not sources:
        console.print("no webhook sources (add one: patchwire webhooks source add NAME "
                      "--scheme stripe --secret-env VAR)")
        return
    table = Table("name", "scheme", "path", "secrets", "enabled")
    for s in sources:
        table.add_row(escape(s.name), s.scheme.scheme, f"/hooks/{escape(s.name)}",
                      str(len(s.secrets)), "yes" if s.enabled else "no")
    console.print(table)


@source_app.command("show")
def show_source(name: str = typer.Argument(...),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """One source's settings and its secrets' ages (never their values)."""

    async def work(pw: Patchwire) -> WebhookSource:
        return await _sources(pw).get(name)

    source = _with_pw(work)
    if as_json:
        print_json(source.to_dict())
    else:
        _print_source(source)


@source_app.command("rotate")
def rotate_source(
    name: str = typer.Argument(...),
    secret_env: str = typer.Option(None, "--secret-env"),
    secret_stdin: bool = typer.Option(False, "--secret-stdin"),
    grace: str = typer.Option("24h", "--grace", help="how long the older secrets stay "
                                                     "valid (e.g. 1h, 2d; 0 ends them now)"),
) -> None:
    """Add a new secret; the older ones keep verifying for the grace period. A running
    server picks the change up within seconds."""
    seconds = _grace(grace)
    secret = _secret(secret_env, secret_stdin)

    async def work(pw: Patchwire) -> WebhookSource:
        return await _sources(pw).rotate(name, secret, grace_s=seconds)

    source = _with_pw(work)
    console.print(f"[green]rotated[/]: {escape(source.name)} has {len(source.secrets)} "
                  f"secret(s); the older ones stop verifying in {escape(grace)}")


def _set_enabled(name: str, enabled: bool) -> None:
    async def work(pw: Patchwire) -> WebhookSource:
        return await _sources(pw).update(name, enabled=enabled)

    _with_pw(work)
    console.print(f"{escape(name)}: {'enabled' if enabled else 'disabled'}")


@source_app.command("enable")
def enable_source(name: str = typer.Argument(...)) -> None:
    """Accept events for this source again."""
    _set_enabled(name, True)


@source_app.command("disable")
def disable_source(name: str = typer.Argument(...)) -> None:
    """Answer 404 to this source's posts (senders retry later)."""
    _set_enabled(name, False)


@source_app.command("remove")
def remove_source(name: str = typer.Argument(...)) -> None:
    """Delete a source (its inbox events stay)."""

    async def work(pw: Patchwire) -> None:
        await _sources(pw).remove(name)

    _with_pw(work)
    console.print(f"removed webhook source {escape(name)}")


@app.command("inbox")
def inbox(
    source: str = typer.Option(None, "--source"),
    status: str = typer.Option(None, "--status", help="pending|processed|failed"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Received events, newest first."""
    if status is not None and status not in ("pending", "processed", "failed"):
        fail("--status: pending, processed or failed", code=2)

    async def work(pw: Patchwire) -> list[dict[str, Any]]:
        return [e.to_dict() for e in await _inbox(pw).list_events(
            source=source, status=status, limit=limit)]

    events = _with_pw(work)
    if as_json:
        print_json(events)
        return
    table = Table("id", "source", "event id", "type", "status", "attempts", "received")
    for e in events:
        style = _STATUS_STYLE.get(e["status"], "")
        table.add_row(e["id"], escape(e["source"]), escape(e["event_id"] or "-"),
                      escape(e["type"] or "-"), f"[{style}]{e['status']}[/]",
                      str(e["attempts"]), _when(e["received_at"]))
    console.print(table)


@app.command("event")
def show_event(event_id: str = typer.Argument(..., help="the inbox id")) -> None:
    """One inbox event with its payload and stored headers (JSON)."""

    async def work(pw: Patchwire) -> dict[str, Any]:
        return (await _inbox(pw).get_event(event_id)).to_dict(payload=True)

    print_json(_with_pw(work))


@app.command("rejections")
def rejections(
    source: str = typer.Option(None, "--source"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Refused requests, newest first (headers redacted, a body excerpt)."""

    async def work(pw: Patchwire) -> list[dict[str, Any]]:
        return [r.to_dict() for r in await _inbox(pw).list_rejections(source=source,
                                                                       limit=limit)]

    found = _with_pw(work)
    if as_json:
        print_json(found)
        return
    table = Table("when", "source", "status", "reason", "detail")
    for r in found:
        table.add_row(_when(r["received_at"]), escape(r["source"]), str(r["status"]),
                      escape(r["reason"]), escape(r["detail"] or ""))
    console.print(table)


@app.command("replay")
def replay(event_id: str = typer.Argument(..., help="the inbox id")) -> None:
    """Process an event again (a failed one, typically): due at once, fresh attempts."""

    async def work(pw: Patchwire) -> dict[str, Any]:
        return (await _inbox(pw).replay(event_id)).to_dict()

    event = _with_pw(work)
    console.print(f"event {escape(event['id'])} is pending again; a running server "
                  "processes it within seconds")
