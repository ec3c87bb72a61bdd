"""`patchwire catalog ...`: the real-world connectors shipped with Patchwire (list, search,
show); `patchwire connector add NAME` enables one in the deployment."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from patchwire.catalog import CatalogEntry, load_catalog
from patchwire.cli._common import console, errors_handled, escape, fail, print_json, settings
from patchwire.connectors import ConnectorRegistry

app = typer.Typer(help="The catalog of real-world connectors (Stripe, Zendesk, Slack...).",
                  no_args_is_help=True)


def _enabled() -> set[str]:
    """Names of the connectors the deployment has (a catalog connector once added)."""
    registry = ConnectorRegistry.load(settings().connector_paths, builtins=False)
    return {spec.name for spec in registry}


def _row(entry: CatalogEntry, enabled: set[str]) -> dict[str, Any]:
    return {**entry.summary(), "enabled": entry.name in enabled}


def _table(rows: list[dict[str, Any]], *, score: list[float] | None = None) -> None:
    table = Table("name", "title", "categories", "auth", "actions", "enabled",
                  *(["score"] if score else []))
    for i, row in enumerate(rows):
        table.add_row(row["name"], escape(row["title"]), ", ".join(row["categories"]),
                      row["auth"], str(len(row["actions"])), "yes" if row["enabled"] else "",
                      *([f"{score[i]:.2f}"] if score else []))
    console.print(table)


@app.command("list")
def list_catalog(
    category: str = typer.Option(None, "--category", help="only this category (crm, support...)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (an array of objects)"),
) -> None:
    """List every catalog connector with its auth mode, actions and where its facts came
    from."""
    with errors_handled():
        catalog = load_catalog()
        enabled = _enabled()
        rows = [_row(e, enabled) for e in catalog
                if category is None or category in e.categories]
        if category is not None and not rows:
            known = sorted({c for e in catalog for c in e.categories})
            fail(f"no catalog connector is in category {category!r} "
                 f"(categories: {', '.join(known)})")
    if as_json:
        print_json(rows)
    else:
        _table(rows)
        console.print(f"{len(rows)} connector(s); `patchwire catalog show NAME` for one, "
                      f"`patchwire connector add NAME` to enable it")


@app.command("search")
def search_catalog(
    query: str = typer.Argument(..., help="what the connector is for: 'refund', 'tickets', "
                                "'calendar'..."),
    limit: int = typer.Option(20, "--limit", min=1, max=200),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Find catalog connectors by name, category, what they do or what people call it."""
    with errors_handled():
        hits = load_catalog().search(query, limit=limit)
        enabled = _enabled()
    rows = [{**_row(e, enabled), "score": score} for e, score in hits]
    if as_json:
        print_json(rows)
    elif not rows:
        console.print(f"no catalog connector matches {escape(query)!r}")
    else:
        _table(rows, score=[r["score"] for r in rows])


@app.command("show")
def show_catalog(
    name: str = typer.Argument(..., help="catalog connector name, e.g. stripe"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """One catalog connector: auth facts, settings, actions with their marks, sources."""
    with errors_handled():
        entry = load_catalog().get(name)
        enabled = _enabled()
    details = {**entry.details(), "enabled": entry.name in enabled}
    if as_json:
        print_json(details)
        return
    console.print(f"[bold]{escape(entry.title)}[/] ({entry.name}) — "
                  f"{escape(entry.spec.description)}")
    for key in ("categories", "auth", "base_url", "docs_url", "verified_at", "source",
                "licence", "openapi"):
        value = details[key] if key != "auth" else details["auth_facts"]
        if value:
            text = ", ".join(value) if isinstance(value, list) else (
                "; ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict)
                else str(value))
            console.print(f"  {key}: {escape(text)}", highlight=False)
    settings_table = Table("setting", "secret", "required", "description")
    for s in details["settings"]:
        settings_table.add_row(s["name"], "yes" if s["secret"] else "",
                               "yes" if s["required"] else "", escape(s["description"]))
    console.print(settings_table)
    actions = Table("action", "marks", "summary")
    for a in details["actions"]:
        actions.add_row(a["name"], ", ".join(a["marks"]), escape(a["summary"]))
    console.print(actions)
    if not details["enabled"]:
        console.print(f"enable it: patchwire connector add {entry.name}")
