"""`patchwire subscriptions ...` and `patchwire deliveries ...`: outbound webhooks.

Subscriptions and deliveries live in the store; these commands only read and change rows.
The sending is done by `patchwire serve` (its delivery worker), which picks up changes such
as a redelivery within its poll interval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.table import Table

from patchwire.cli._common import console, err_console, escape, fail, print_json, run, settings

if TYPE_CHECKING:
    from patchwire.webhooks import Delivery, Subscription, WebhookOutbox

__all__ = ["deliveries_app", "subscriptions_app"]

subscriptions_app = typer.Typer(
    help="Outbound webhook subscriptions: endpoints that receive events.", no_args_is_help=True)
deliveries_app = typer.Typer(
    help="Outbound webhook deliveries: the delivery log and redelivery.", no_args_is_help=True)

_T = TypeVar("_T")
_STATUS_STYLE = {"active": "green", "disabled": "red", "succeeded": "green",
                 "failed": "red", "pending": "yellow"}


@asynccontextmanager
async def _outbox() -> AsyncIterator[WebhookOutbox]:
    from patchwire.auth.vault import Vault
    from patchwire.store import Store
    from patchwire.webhooks import WebhookOutbox

    cfg = settings()
    vault = Vault.from_settings(cfg)
    async with await Store.open(cfg.effective_database_url) as store:
        yield WebhookOutbox(store, vault, allow_networks=cfg.allow_networks)


def _with_outbox(work: Callable[[WebhookOutbox], Awaitable[_T]]) -> _T:
    async def main() -> _T:
        async with _outbox() as box:
            return await work(box)

    return run(main())


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


def _styled(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def _print_subscription(sub: Subscription) -> None:
    d = sub.to_dict()
    console.print(f"[bold]{d['id']}[/] {_styled(d['status'])}")
    console.print(f"  url:         {escape(d['url'])}", highlight=False)
    console.print(f"  events:      {escape(', '.join(d['event_types']))}", highlight=False)
    if d["description"]:
        console.print(f"  description: {escape(d['description'])}", highlight=False)
    console.print(f"  created:     {_when(d['created_at'])}")
    if d["disabled_reason"]:
        console.print(f"  disabled:    {_when(d['disabled_at'])}: "
                      f"{escape(d['disabled_reason'])}", highlight=False)
    if d["failing_since"]:
        console.print(f"  failing since {_when(d['failing_since'])}; next retry "
                      f"{_when(d['retry_at'])}")


# -- subscriptions ---------------------------------------------------------------------------


@subscriptions_app.command("add")
def add(
    url: str = typer.Argument(..., help="the endpoint URL (https:// recommended)"),
    events: list[str] = typer.Option(
        ..., "--events", "-e",
        help="event type filter: an exact type, 'order.*' or '*' (repeatable)"),
    description: str = typer.Option(None, "--description", "-d"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (with the secret)"),
) -> None:
    """Subscribe an endpoint to events; prints its signing secret, once."""
    created = _with_outbox(lambda box: box.create_subscription(url, events,
                                                                description=description))
    if as_json:
        print_json(created.to_dict())
        return
    _print_subscription(created.subscription)
    console.print(f"\n  secret:      [bold]{created.secret}[/]", highlight=False)
    err_console.print("[yellow]Store the secret now: it is shown only once.[/] Receivers "
                      "verify the webhook-signature header with it (Standard Webhooks).")


@subscriptions_app.command("list")
def list_subscriptions(
    status: str = typer.Option(None, "--status", help="active or disabled"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Subscriptions, oldest first."""
    if status is not None and status not in ("active", "disabled"):
        fail("--status is 'active' or 'disabled'", code=2)
    subs = _with_outbox(lambda box: box.list_subscriptions(status=status))
    if as_json:
        print_json([s.to_dict() for s in subs])
        return
    if not subs:
        console.print("no subscriptions (add one with: patchwire subscriptions add URL "
                      "--events '*')")
        return
    table = Table("id", "status", "url", "events", "created")
    for s in subs:
        d = s.to_dict()
        table.add_row(d["id"], _styled(d["status"]), escape(d["url"]),
                      escape(", ".join(d["event_types"])), _when(d["created_at"]))
    console.print(table)


@subscriptions_app.command("show")
def show(subscription_id: str = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json")) -> None:
    """One subscription (never its secret)."""
    sub = _with_outbox(lambda box: box.get_subscription(subscription_id))
    if as_json:
        print_json(sub.to_dict())
    else:
        _print_subscription(sub)


@subscriptions_app.command("remove")
def remove(subscription_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Delete a subscription with its deliveries and their log."""
    _with_outbox(lambda box: box.remove_subscription(subscription_id))
    console.print(f"[green]removed[/] subscription {subscription_id}")


@subscriptions_app.command("enable")
def enable(subscription_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Enable an endpoint again: its pending deliveries go, in order."""
    sub = _with_outbox(lambda box: box.enable(subscription_id))
    console.print(f"[green]enabled[/] subscription {sub.id}")


@subscriptions_app.command("disable")
def disable(subscription_id: str = typer.Argument(..., metavar="ID"),
            reason: str = typer.Option("disabled by a person", "--reason")) -> None:
    """Stop sending to an endpoint (pending deliveries wait until it is enabled)."""
    sub = _with_outbox(lambda box: box.disable(subscription_id, reason=reason))
    console.print(f"[yellow]disabled[/] subscription {sub.id}")


# -- deliveries ------------------------------------------------------------------------------


def _delivery_row(d: dict[str, Any]) -> list[str]:
    code = "" if d["last_status_code"] is None else str(d["last_status_code"])
    latency = "" if d["last_latency_ms"] is None else f"{d['last_latency_ms']:.1f}"
    return [d["id"], d["subscription_id"], escape(d["event_type"]), _styled(d["status"]),
            str(d["attempts"]), code, latency, _when(d["next_attempt_at"])
            if d["status"] == "pending" else _when(d["delivered_at"])]


@deliveries_app.command("list")
def list_deliveries(
    subscription: str = typer.Option(None, "--subscription", "-s"),
    status: str = typer.Option(None, "--status", help="pending, succeeded or failed"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The delivery log, newest first: status, attempts, last HTTP status and latency."""
    if status is not None and status not in ("pending", "succeeded", "failed"):
        fail("--status is 'pending', 'succeeded' or 'failed'", code=2)
    found = _with_outbox(lambda box: box.list_deliveries(
        subscription_id=subscription, status=status, limit=limit))
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    if not found:
        console.print("no deliveries")
        return
    table = Table("id", "subscription", "event", "status", "attempts", "http", "ms",
                  "next / delivered")
    for d in found:
        table.add_row(*_delivery_row(d.to_dict()))
    console.print(table)


@deliveries_app.command("show")
def show_delivery(delivery_id: str = typer.Argument(..., metavar="ID"),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """One delivery with its attempt log."""

    async def work(box: WebhookOutbox) -> tuple[Delivery, list[dict[str, Any]]]:
        delivery = await box.get_delivery(delivery_id)
        return delivery, [a.to_dict() for a in await box.attempts(delivery_id)]

    delivery, attempts = _with_outbox(work)
    if as_json:
        print_json({**delivery.to_dict(), "attempt_log": attempts})
        return
    d = delivery.to_dict()
    console.print(f"[bold]{d['id']}[/] {_styled(d['status'])} {escape(d['event_type'])} "
                  f"(event {d['event_id']}) to {d['subscription_id']}", highlight=False)
    table = Table("#", "at", "outcome", "http", "ms", "error")
    for a in attempts:
        table.add_row(str(a["attempt"]), _when(a["started_at"]), _styled(a["outcome"]),
                      "" if a["status_code"] is None else str(a["status_code"]),
                      f"{a['latency_ms']:.1f}", escape(a["error"] or ""))
    console.print(table)


@deliveries_app.command("redeliver")
def redeliver(
    delivery_id: str = typer.Argument(None, metavar="[ID]"),
    failed: bool = typer.Option(False, "--failed", help="every failed delivery of "
                                                        "--subscription"),
    subscription: str = typer.Option(None, "--subscription", "-s"),
) -> None:
    """Send a delivery again (fresh retry schedule), or all failed ones of an endpoint."""
    if failed == (delivery_id is not None):
        fail("give a delivery ID, or --failed --subscription S", code=2)
    if failed:
        if not subscription:
            fail("--failed needs --subscription S", code=2)
        count = _with_outbox(lambda box: box.redeliver_failed(subscription))
        console.print(f"[green]queued[/] {count} failed deliver{'y' if count == 1 else 'ies'} "
                      f"of {subscription} for redelivery")
        return
    delivery = _with_outbox(lambda box: box.redeliver(delivery_id))
    console.print(f"[green]queued[/] delivery {delivery.id} for redelivery")
