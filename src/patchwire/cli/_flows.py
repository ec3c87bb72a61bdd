"""`patchwire flow ...`: schema, check, list, show (running flows is added next to these)."""

from __future__ import annotations

import json
from collections.abc import Sequence
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
from patchwire.connectors import ConnectorRegistry, format_path
from patchwire.errors import SpecProblem
from patchwire.flows import (
    CallStep,
    EmitStep,
    FlowRegistry,
    FlowStep,
    ForeachStep,
    Step,
    Trigger,
    WaitStep,
    check_flow_references,
    flow_files,
    flow_json_schema,
    iter_steps,
    step_kind,
)

app = typer.Typer(help="Flows: multi-step workflows over connector actions.",
                  no_args_is_help=True)


def _registry(extra: Sequence[Path] = ()) -> FlowRegistry:
    return FlowRegistry.load([*settings().flow_paths, *extra])


def _warn(problems: Sequence[SpecProblem]) -> None:
    for p in problems:
        err_console.print(f"[yellow]warning:[/] {escape(str(p))}", highlight=False)


@app.command("schema")
def schema(output: Path = typer.Option(None, "-o", "--output", help="write to a file")) -> None:
    """Print the JSON Schema of the flow format (for editors)."""
    text = json.dumps(flow_json_schema(), indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote {output}")
    else:
        print(text)


@app.command("check")
def check(
    paths: list[Path] = typer.Argument(
        None, help="flow files or directories to check (default: every known flow)"),
) -> None:
    """Validate flows — shape, expressions, step ids, schedules, actions and arguments,
    sub-flows — and print every problem as file:line at path: message."""
    cfg = settings()
    connectors = ConnectorRegistry.load(cfg.connector_paths)
    if paths:
        missing = [p for p in paths if not p.exists()]
        if missing:
            fail(f"no such file or directory: {escape(', '.join(map(str, missing)))}")
        # The named files are checked; their sub-flows may be any known flow.
        targets = FlowRegistry.load(paths, builtins=False)
        known = _registry(paths)
        checked = sum(len(flow_files(p)) for p in paths)
        problems = list(targets.problems)
        mapping = known.as_mapping()
        for flow in targets:
            problems.extend(check_flow_references(flow, connectors, mapping))
    else:
        known = _registry()
        checked = len(known) + len({p.file for p in known.problems})
        problems = [*known.problems, *known.check_references(connectors)]
    # Broken connector files are not the flows' fault, but they explain unknown actions.
    _warn(connectors.problems)
    for p in problems:
        err_console.print(escape(str(p)), highlight=False)
    if problems:
        fail(f"{len(problems)} problem(s) found")
    console.print(f"[green]ok[/]: {checked} flow(s) valid")


@app.command("list")
def list_flows(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List known flows (your flow directories; `patchwire init --examples` copies the
    shipped examples there)."""
    reg = _registry()
    rows = [
        {"id": f.id, "version": f.version, "title": f.title, "trigger": _trigger_summary(f.trigger),
         "steps": sum(1 for _ in iter_steps(f.steps)), "source": reg.source_of(f.id)}
        for f in reg
    ]
    if as_json:
        print_json(rows)
    else:
        table = Table("id", "version", "title", "trigger", "steps", "source")
        for r in rows:
            table.add_row(*(escape(str(v)) for v in r.values()))
        console.print(table)
    _warn(reg.problems)


@app.command("show")
def show(flow_id: str = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json", help="print the flow as JSON")) -> None:
    """Show a flow: trigger, input and its steps as a tree."""
    reg = _registry()
    with errors_handled():
        flow = reg.get(flow_id)
    if as_json:
        print_json(flow.model_dump(by_alias=True, mode="json", exclude_defaults=True))
        return
    console.print(f"[bold]{flow.id}[/] v{flow.version} {escape(flow.title)}", highlight=False)
    if flow.description:
        console.print(escape(flow.description), highlight=False)
    console.print(f"source: {escape(reg.source_of(flow.id))}", highlight=False)
    console.print(f"trigger: {escape(_trigger_summary(flow.trigger))}", highlight=False)
    props = flow.input.get("properties")
    if isinstance(props, dict) and props:
        required = set(flow.input.get("required") or [])
        fields = ", ".join(f"{k}{'' if k in required else '?'}" for k in props)
        console.print(f"input: {escape(fields)}", highlight=False)
    console.print("steps:")
    for loc, step in iter_steps(flow.steps):
        # depth = how many step lists enclose this one (each adds an index to the path);
        # a nested list gets its label (`then:`, `do:`...) on a line of its own
        depth = sum(1 for part in loc if isinstance(part, int)) - 1
        indent = " " * (2 + 4 * depth)
        label = _branch_label(loc)
        if label:
            console.print(f"{indent[:-2]}{escape(label)}:", highlight=False)
        console.print(f"{indent}[bold]{step.id}[/] {escape(_step_summary(step))}",
                      highlight=False)
    if flow.output:
        console.print(f"output: {escape(' '.join(flow.output.split()))}", highlight=False)


def _trigger_summary(trigger: Trigger) -> str:
    parts = ["manual"] if trigger.manual else []
    parts += [f"schedule {s.cron} ({s.timezone})" for s in trigger.schedule]
    parts += [f"webhook {w.source}" for w in trigger.webhook]
    if trigger.tool is not None:
        parts.append(f"tool {trigger.tool.name}" if trigger.tool.name else "tool")
    return ", ".join(parts) or "none"


def _branch_label(loc: tuple[str | int, ...]) -> str:
    """``then:``/``cases.x:``... for the first step of a nested list, else nothing."""
    if len(loc) < 3 or loc[-1] != 0:
        return ""
    head = loc[:-1]
    # the part of the path after the enclosing step's index
    last_index = max(i for i, part in enumerate(head) if isinstance(part, int))
    return format_path(head[last_index + 1:])


def _step_summary(step: Step) -> str:
    kind = step_kind(step)
    if isinstance(step, CallStep):
        text = f"call {step.call}"
    elif isinstance(step, FlowStep):
        text = f"flow {step.flow}"
    elif isinstance(step, EmitStep):
        text = f"emit {step.emit}"
    elif isinstance(step, ForeachStep):
        text = f"foreach {_short(step.foreach)} (concurrency {step.concurrency})"
    elif isinstance(step, WaitStep):
        text = f"wait {step.wait:g}s" if step.wait is not None else \
            f"wait until {_short(step.until or '')}"
    else:
        text = kind
    if step.when:
        text += f" when {_short(step.when)}"
    return text


def _short(expression: str, limit: int = 50) -> str:
    text = " ".join(expression.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
