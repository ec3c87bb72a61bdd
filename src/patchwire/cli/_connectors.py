"""`patchwire connector ...`: list, show, check, schema, import."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from patchwire.cli._common import (
    console,
    err_console,
    errors_handled,
    escape,
    fail,
    print_json,
    settings,
)
from patchwire.connectors import (
    ActionSpec,
    ConnectorRegistry,
    connector_json_schema,
    load_connector_file,
)
from patchwire.errors import OpenAPIImportError, SpecError

app = typer.Typer(help="Connectors: declarative descriptions of external APIs.",
                  no_args_is_help=True)


@app.command("list")
def list_connectors(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List known connectors (built-in and from your connector directories)."""
    reg = ConnectorRegistry.load(settings().connector_paths)
    rows = [
        {"name": s.name, "title": s.title, "auth": s.auth.type, "actions": len(s.actions),
         "source": reg.source_of(s.name)}
        for s in reg
    ]
    if as_json:
        print_json(rows)
    else:
        table = Table("name", "title", "auth", "actions", "source")
        for r in rows:
            table.add_row(*(escape(str(v)) for v in r.values()))
        console.print(table)
    for p in reg.problems:
        err_console.print(f"[yellow]warning:[/] {escape(str(p))}")


@app.command("show")
def show(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a connector's settings and actions."""
    reg = ConnectorRegistry.load(settings().connector_paths)
    with errors_handled():
        spec = reg.get(name)
    if as_json:
        print_json(spec.model_dump(by_alias=True, mode="json", exclude_defaults=True))
        return
    console.print(f"[bold]{spec.name}[/] {escape(spec.title)} — base URL {escape(spec.base_url)}"
                  f", auth {spec.auth.type}")
    settings_table = Table("setting", "secret", "required", "default", "description")
    for k, s in spec.settings.items():
        settings_table.add_row(k, "yes" if s.secret else "", "yes" if s.required and
                               s.default is None else "", escape(s.default or ""),
                               escape(s.description))
    console.print(settings_table)
    actions = Table("action", "method", "path", "summary")
    for k, a in spec.actions.items():
        actions.add_row(f"{spec.name}.{k}", a.method, escape(_target_of(a)),
                        escape(a.summary or a.description[:60]))
    console.print(actions)


def _target_of(action: ActionSpec) -> str:
    """What an action reaches, as the connectors table shows it."""
    if action.request is not None:
        return action.request.path
    if action.graphql is not None:
        return f"graphql {action.graphql.kind or 'operation'}"
    if action.soap is not None:
        return f"soap {action.soap.operation}"
    return f"code {action.code}"


@app.command("check")
def check(files: list[Path] = typer.Argument(None, help="files to check (default: all)")) -> None:
    """Validate connector files; print every problem as file:line at path: message."""
    problems = []
    checked = 0
    if files:
        for f in files:
            checked += 1
            try:
                load_connector_file(f)
            except SpecError as exc:
                problems.extend(exc.problems)
    else:
        reg = ConnectorRegistry.load(settings().connector_paths)
        checked = len(reg)
        problems = reg.problems
    for p in problems:
        err_console.print(escape(str(p)), highlight=False)
    if problems:
        fail(f"{len(problems)} problem(s) found")
    console.print(f"[green]ok[/]: {checked} connector(s) valid")


@app.command("add")
def add(
    name: str = typer.Argument(..., help="a catalog connector (`patchwire catalog list`)"),
    force: bool = typer.Option(False, "--force", help="replace the deployment's file"),
) -> None:
    """Enable a catalog connector in this deployment: its file is written to the first
    connector directory (connectors/ by default), where you may edit it."""
    from patchwire.catalog import add_to_deployment, load_catalog

    paths = settings().connector_paths
    if not paths:
        fail("no connector directory is configured (connector_paths in patchwire.toml)")
    with errors_handled():
        entry = load_catalog().get(name)
        target = add_to_deployment(name, paths[0], force=force)
    console.print(f"[green]added[/] {entry.name} ({escape(entry.title)}): {target}")
    needs = [n for n, s in entry.spec.settings.items() if s.required and s.default is None]
    if entry.spec.auth.type == "oauth2" and getattr(entry.spec.auth, "flow", "") in (
            "authorization_code", "device_code"):
        console.print(f"next: register an OAuth app (`patchwire oauth-apps set {entry.name} "
                      f"...`), then hand out connect links (`patchwire connect-link`)")
    elif needs:
        console.print(f"next: `patchwire connection add {entry.name} --name NAME` with "
                      f"{', '.join(needs)}; a running server reloads on SIGHUP or "
                      f"POST /api/v1/definitions/reload")


@app.command("schema")
def schema(output: Path = typer.Option(None, "-o", "--output", help="write to a file")) -> None:
    """Print the JSON Schema of the connector format (for editors)."""
    text = json.dumps(connector_json_schema(), indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote {output}")
    else:
        print(text)


@app.command("import")
def import_(
    source: str = typer.Argument(
        ..., help="OpenAPI 3.0/3.1 or Swagger 2.0 file or http(s) URL, a WSDL file, or a "
        "GraphQL schema (SDL or introspection JSON; an endpoint URL with --introspect)"),
    output: Path = typer.Option(None, "-o", "--output",
                                help="write the connector here (default connectors/NAME.yaml)"),
    name: str = typer.Option(None, "--name", help="connector name (default from info.title)"),
    base_url: str = typer.Option(None, "--base-url", help="override the servers' base URL"),
    stdout: bool = typer.Option(False, "--stdout", help="print the YAML instead of writing"),
    introspect: bool = typer.Option(
        False, "--introspect", help="GraphQL: SOURCE is an endpoint URL to introspect"),
    header: list[str] = typer.Option(
        [], "--header", help="GraphQL --introspect: a request header 'Name: value'"),
    fields: str = typer.Option(
        None, "--fields", help="GraphQL: root fields to import, comma-separated (default all)"),
    depth: int = typer.Option(2, "--depth", help="GraphQL: levels of nested objects selected"),
) -> None:
    """Turn an OpenAPI 3.x or Swagger 2.0 document, a WSDL or a GraphQL schema (SDL,
    introspection JSON or --introspect URL) into a connector, saying what was skipped and
    why."""
    from patchwire.cli._graphql import import_graphql_schema, is_graphql_schema
    from patchwire.connectors.openapi import ImportResult, import_openapi
    from patchwire.connectors.wsdl import WsdlImportResult, copy_wsdl_files, import_wsdl, is_wsdl

    result: ImportResult
    if introspect or is_graphql_schema(source):  # GraphQL: one action per root field
        result = import_graphql_schema(
            source, introspect=introspect, headers=header, output=output, name=name,
            base_url=base_url, endpoint=None, fields=fields, depth=depth, stdout=stdout)
        if stdout:
            print(result.to_yaml(), end="")
        for w in result.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
        return
    try:
        if is_wsdl(source):  # SOAP: one action per WSDL operation
            result = import_wsdl(source, name=name, base_url=base_url)
        else:
            result = import_openapi(source, name=name, base_url=base_url)
    except OpenAPIImportError as exc:
        fail(escape(str(exc)))
    text = result.to_yaml()
    if stdout:
        print(text, end="")
    else:
        target = output or Path("connectors") / f"{result.connector.name}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        if isinstance(result, WsdlImportResult):
            copy_wsdl_files(result, target.parent)  # the connector names the WSDL beside it
        err_console.print(
            f"[green]imported[/] {result.connector.name}: {len(result.connector.actions)} "
            f"action(s) → {escape(str(target))}"
        )
    for w in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
    for s in result.skipped:
        err_console.print(f"[yellow]skipped[/] {escape(s.where)}: {escape(s.reason)}",
                          highlight=False)
