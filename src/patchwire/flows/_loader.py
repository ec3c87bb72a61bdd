"""Load flow documents and report every problem with file, line and field path.

Three layers of checks, each reporting ``file:line at steps[2].do[0].transform: message``:

1. the models (``spec.py``): shape, types, unknown keys, durations, one kind per step;
2. :func:`check_flow`: whole-document rules — every JSONata expression compiles, step ids
   are unique across nested steps, ``$steps.<id>`` names a step, the input schema is valid
   JSON Schema 2020-12, cron expressions and time zones exist;
3. :func:`check_flow_references`: what needs other documents — ``call`` names an action of
   a known connector with declared arguments, ``flow`` names a known flow, no sub-flow cycle.

Layer 2 runs on the raw YAML data, so a document that fails layer 1 still gets its
expressions and ids checked: one pass shows everything.
"""

from __future__ import annotations

import re
import weakref
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path as FsPath
from typing import Any

from croniter import croniter
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from patchwire.connectors import (
    ConnectorRegistry,
    LineMap,
    dedupe_problems,
    format_path,
    input_schema_problem,
    load_yaml_with_lines,
    pydantic_problems,
)
from patchwire.errors import LookupFailed, SpecError, SpecProblem
from patchwire.expressions import ExpressionError, compile_expression
from patchwire.flows.spec import (
    STEP_KINDS,
    CallStep,
    FlowSpec,
    FlowStep,
    ForeachStep,
    IfStep,
    ParallelStep,
    Step,
    SwitchStep,
    _step_kind,
)

__all__ = [
    "check_flow",
    "check_flow_references",
    "flow_lines",
    "iter_steps",
    "load_flow_file",
    "load_flow_text",
    "parse_flow",
]

Loc = tuple[str | int, ...]

#: names a foreach variable may not take: they would hide the run's context
_RESERVED_VARIABLES = frozenset({"input", "steps", "run", "error", "index"})
#: every key some step kind accepts (to tell a typo'd kind from an unknown field)
_STEP_FIELDS = frozenset(
    {"id", "description", "when", "retry", "timeout", "on_error", "limits", "connection", "args",
     "then", "else", "cases", "default", "as", "concurrency", "max_items", "do", "until",
     "timeout_after", "on_timeout", "data", "input", "code", *STEP_KINDS}
)
#: step keys holding one JSONata expression, whatever the step's kind
_EXPRESSION_KEYS = ("when", "transform", "if", "switch", "foreach", "until", "approve",
                    "data", "fail")
_SNAKE_PATTERN = r"^[a-z][a-z0-9_]*$"

# Where each loaded flow came from, so checks run later (references, from the registry or
# the CLI) still report file:line. Keyed by object identity and dropped with the object:
# the models are frozen and hold dicts, so they cannot be hashed or carry extra fields.
_LOCATIONS: dict[int, LineMap] = {}


def _remember(flow: FlowSpec, lines: LineMap) -> None:
    key = id(flow)
    _LOCATIONS[key] = lines
    weakref.finalize(flow, _LOCATIONS.pop, key, None)


def flow_lines(flow: FlowSpec) -> LineMap:
    """The line map of a loaded flow; an empty one (no lines) for a flow built in code."""
    return _LOCATIONS.get(id(flow)) or LineMap(f"<flow {flow.id}>")


# -- loading --------------------------------------------------------------------------------


def load_flow_file(path: str | FsPath) -> FlowSpec:
    p = FsPath(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(str(p), None, "", f"cannot read file: {exc}")]) from exc
    return load_flow_text(text, str(p))


def load_flow_text(text: str, file: str = "<flow>") -> FlowSpec:
    """Parse and check one flow document; raises :class:`SpecError` with every problem."""
    data, lines, problems = load_yaml_with_lines(text, file)
    if data is None:
        raise SpecError(problems)
    return parse_flow(data, lines, problems)


def parse_flow(data: Any, lines: LineMap, problems: list[SpecProblem] | None = None) -> FlowSpec:
    problems = list(problems or [])
    if not isinstance(data, dict):
        problems.append(lines.problem((), "a flow must be a mapping at the top level"))
        raise SpecError(problems)
    try:
        flow = FlowSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, data, lines, clean_loc=_clean_loc,
                                          explain=_explain))
        problems.extend(lines.problem(loc, msg) for loc, msg in _document_problems(data))
        raise SpecError(dedupe_problems(problems)) from None
    problems.extend(lines.problem(loc, msg) for loc, msg in _document_problems(data))
    if problems:
        raise SpecError(dedupe_problems(problems))
    _remember(flow, lines)
    return flow


def check_flow(flow: FlowSpec) -> list[SpecProblem]:
    """The whole-document checks of a flow built in code (loading runs them already)."""
    data = flow.model_dump(by_alias=True, mode="json", exclude_none=True)
    lines = flow_lines(flow)
    return dedupe_problems([lines.problem(loc, msg) for loc, msg in _document_problems(data)])


# -- pydantic's errors, in YAML terms ---------------------------------------------------------


def _clean_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """pydantic's error location -> the YAML path.

    A step is a tagged union: pydantic puts the kind after the step's index
    (``steps.0.call.argz``); the user wrote ``steps[0].argz``. Union members of plain
    fields (``args.str``) are dropped the same way.
    """
    out: list[str | int] = []
    current: Any = data
    after_index = False
    for part in loc:
        if (after_index and isinstance(current, dict) and part in STEP_KINDS
                and _step_kind(current) == part):
            after_index = False
            continue
        after_index = False
        if isinstance(current, dict) and part in current:
            out.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
            after_index = True
        elif isinstance(part, str) and not isinstance(current, dict):
            continue  # a union member's name under a scalar or a list
        else:
            out.append(part)
            current = None
    return tuple(out)


def _explain(err: ErrorDetails, loc: Loc) -> tuple[Loc, str] | None:
    if err["type"] == "step_kind":
        return _explain_step_kind(err["input"], loc)
    if err["type"] == "string_pattern_mismatch" and (err.get("ctx") or {}).get(
            "pattern") == _SNAKE_PATTERN:
        return loc, f"{err['input']!r} must be lower snake_case (a-z, 0-9, _), starting " \
                    "with a letter"
    return None


def _explain_step_kind(step: Any, loc: Loc) -> tuple[Loc, str]:
    kinds = ", ".join(STEP_KINDS)
    if not isinstance(step, dict):
        return loc, f"a step is a mapping with an id and one of: {kinds}"
    found = [k for k in STEP_KINDS if k in step]
    if len(found) > 1:
        return loc, (f"a step has exactly one kind, this one has {len(found)}: "
                     f"{' and '.join(found)} (split it into steps)")
    unknown = [str(k) for k in step if k not in _STEP_FIELDS]
    if len(unknown) == 1:
        return (*loc, unknown[0]), f"unknown step kind {unknown[0]!r}; a step has one of: {kinds}"
    return loc, f"a step needs one of: {kinds}"


# -- whole-document checks (on the raw data) ------------------------------------------------


def _document_problems(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    found: list[tuple[Loc, str]] = []
    steps = list(_raw_steps(data.get("steps"), ("steps",)))
    ids: dict[str, Loc] = {}
    for loc, step in steps:
        sid = step.get("id")
        if not isinstance(sid, str):
            continue
        if sid in ids:
            found.append(((*loc, "id"), f"step id {sid!r} is already used at "
                                        f"{format_path(ids[sid])}; ids are unique in a flow"))
        else:
            ids[sid] = loc
    expressions: list[tuple[Loc, str]] = []
    for loc, step in steps:
        expressions.extend(_step_expressions(loc, step))
        name = step.get("as")
        if "foreach" in step and isinstance(name, str) and name in _RESERVED_VARIABLES:
            found.append(((*loc, "as"), f"${name} is part of the run's context; "
                                        "name the item something else"))
    trigger = data.get("trigger")
    if isinstance(trigger, dict):
        for i, schedule in _one_or_many(trigger.get("schedule")):
            base: Loc = ("trigger", "schedule", i) if i is not None else ("trigger", "schedule")
            found.extend(_schedule_problems(base, schedule))
        for i, hook in _one_or_many(trigger.get("webhook")):
            base = ("trigger", "webhook", i) if i is not None else ("trigger", "webhook")
            for key in ("filter", "input"):
                if isinstance(hook.get(key), str):
                    expressions.append(((*base, key), hook[key]))
    if isinstance(data.get("output"), str):
        expressions.append((("output",), data["output"]))
    for loc, source in expressions:
        found.extend(_expression_problems(loc, source, ids))
    if "input" in data:
        problem = input_schema_problem(data["input"], what="a flow's input schema")
        if problem is not None:
            found.append((("input", *problem[0]), problem[1]))
    return found


def _raw_steps(steps: Any, path: Loc) -> Iterator[tuple[Loc, dict[str, Any]]]:
    """Every step mapping under ``steps``, nested ones included, in document order.

    Nested lists are followed by their keys whatever the step's kind, so a step with
    two kinds (already an error) still has its children checked.
    """
    if not isinstance(steps, list):
        return
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        loc = (*path, i)
        yield loc, step
        for key in ("then", "else", "do", "default"):
            yield from _raw_steps(step.get(key), (*loc, key))
        for key in ("cases", "parallel"):
            branches = step.get(key)
            if isinstance(branches, dict):
                for name, branch in branches.items():
                    # int keys stay ints: the line map keeps YAML's `1:` keys that way
                    part = name if isinstance(name, int) else str(name)
                    yield from _raw_steps(branch, (*loc, key, part))
        on_error = step.get("on_error")
        if isinstance(on_error, dict):
            for key in ("fallback", "compensate"):
                yield from _raw_steps(on_error.get(key), (*loc, "on_error", key))


def _step_expressions(loc: Loc, step: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    for key in _EXPRESSION_KEYS:
        if isinstance(step.get(key), str):
            yield (*loc, key), step[key]
    connection = step.get("connection")
    if isinstance(connection, str) and connection.startswith("="):
        yield (*loc, "connection"), connection[1:]
    # `args` of a call and `input` of a sub-flow: one expression, or a mapping whose
    # strings are expressions at any depth (other values are taken as written)
    for key in ("args", "input"):
        value = step.get(key)
        if isinstance(value, str):
            yield (*loc, key), value
        elif isinstance(value, dict):
            yield from _template_expressions((*loc, key), value)


def _template_expressions(loc: Loc, value: Any) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _template_expressions((*loc, str(name)), item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _template_expressions((*loc, i), item)


def _one_or_many(value: Any) -> Iterator[tuple[int | None, dict[str, Any]]]:
    if isinstance(value, dict):
        yield None, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                yield i, item


def _schedule_problems(base: Loc, schedule: dict[str, Any]) -> list[tuple[Loc, str]]:
    found: list[tuple[Loc, str]] = []
    cron = schedule.get("cron")
    if isinstance(cron, str):
        problem = cron_problem(cron)
        if problem:
            found.append(((*base, "cron"), problem))
    tz = schedule.get("timezone")
    if isinstance(tz, str):
        problem = timezone_problem(tz)
        if problem:
            found.append(((*base, "timezone"), problem))
    return found


def cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not a usable schedule, or None. Five fields, or an @-alias."""
    text = cron.strip()
    if not text.startswith("@") and len(text.split()) != 5:
        return (f"cron {cron!r} must have five fields (minute hour day month weekday), "
                "e.g. '0 2 * * *'")
    if not croniter.is_valid(text):
        return f"cron {cron!r} is not a valid cron expression"
    return None


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, or None."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r} (use an IANA name like 'Europe/Paris' or 'UTC')"
    return None


# JSONata string literals and comments, removed before looking for `$steps.<id>` so text
# inside quotes is not taken for a reference.
_NOT_CODE = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"|/\*.*?\*/", re.S)
_STEP_REF = re.compile(r"\$steps\.([A-Za-z_][A-Za-z0-9_]*)")


def step_references(source: str) -> set[str]:
    """Step ids an expression reads as ``$steps.<id>``."""
    return set(_STEP_REF.findall(_NOT_CODE.sub("''", source)))


def _expression_problems(loc: Loc, source: str, ids: Mapping[str, Loc]) -> list[tuple[Loc, str]]:
    try:
        compile_expression(source)
    except ExpressionError as exc:
        return [(loc, str(exc))]
    # Order is not checked: a step may read an enclosing or later-declared step on purpose
    # (a fallback reading the failed step); only an id no step has is certainly wrong.
    return [(loc, f"$steps.{ref} names no step of this flow")
            for ref in sorted(step_references(source)) if ref not in ids]


# -- references to other documents ----------------------------------------------------------


def iter_steps(steps: Sequence[Step], path: Loc = ("steps",)) -> Iterator[tuple[Loc, Step]]:
    """Every parsed step with its YAML path, nested and on_error steps included, in
    document order (``iter_steps(flow.steps)``)."""
    for i, step in enumerate(steps):
        loc = (*path, i)
        yield loc, step
        if isinstance(step, IfStep):
            yield from iter_steps(step.then, (*loc, "then"))
            yield from iter_steps(step.else_, (*loc, "else"))
        elif isinstance(step, SwitchStep):
            for name, branch in step.cases.items():
                yield from iter_steps(branch, (*loc, "cases", name))
            yield from iter_steps(step.default, (*loc, "default"))
        elif isinstance(step, ForeachStep):
            yield from iter_steps(step.do, (*loc, "do"))
        elif isinstance(step, ParallelStep):
            for name, branch in step.parallel.items():
                yield from iter_steps(branch, (*loc, "parallel", name))
        if step.on_error is not None:
            yield from iter_steps(step.on_error.fallback, (*loc, "on_error", "fallback"))
            yield from iter_steps(step.on_error.compensate, (*loc, "on_error", "compensate"))


def check_flow_references(
    flow: FlowSpec, connectors: ConnectorRegistry, flows: Mapping[str, FlowSpec]
) -> list[SpecProblem]:
    """Problems with what ``flow`` names in other documents: actions and their arguments,
    sub-flows and their input, sub-flow cycles. ``flows`` are the known flows by id."""
    lines = flow_lines(flow)
    found: list[tuple[Loc, str]] = []
    for loc, step in iter_steps(flow.steps):
        if isinstance(step, CallStep):
            try:
                _, action = connectors.resolve(step.call)
            except LookupFailed as exc:
                found.append(((*loc, "call"), str(exc)))
                continue
            if isinstance(step.args, dict):
                found.extend(_argument_problems((*loc, "args"), step.args, action.input,
                                                f"action {step.call}", "argument"))
        elif isinstance(step, FlowStep):
            sub = flows.get(step.flow)
            if sub is None and step.flow != flow.id:
                known = ", ".join(sorted(flows)) or "none"
                found.append(((*loc, "flow"), f"unknown flow {step.flow!r} (known: {known})"))
                continue
            cycle = _cycle_through(flow, step.flow, flows)
            if cycle:
                found.append(((*loc, "flow"), "sub-flow cycle: " + " -> ".join(cycle)))
            elif sub is not None and isinstance(step.input, dict):
                found.extend(_argument_problems((*loc, "input"), step.input, sub.input,
                                                f"flow {sub.id}", "input field"))
    return dedupe_problems([lines.problem(loc, msg) for loc, msg in found])


def _argument_problems(
    loc: Loc, given: Mapping[str, Any], schema: Mapping[str, Any], owner: str, noun: str
) -> list[tuple[Loc, str]]:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    found: list[tuple[Loc, str]] = []
    # An explicit `additionalProperties: true` (or a schema) admits free-form arguments;
    # otherwise only declared ones are meaningful, and a stray name is most likely a typo.
    if not schema.get("additionalProperties"):
        declared = ", ".join(sorted(props)) or "none"
        found.extend(((*loc, name), f"{owner} has no {noun} {name!r} (declared: {declared})")
                     for name in given if name not in props)
    required = schema.get("required")
    if isinstance(required, list):
        found.extend((loc, f"missing required {noun} {name!r} of {owner}")
                     for name in required if isinstance(name, str) and name not in given)
    return found


def _cycle_through(flow: FlowSpec, first: str, flows: Mapping[str, FlowSpec]) -> list[str]:
    """The chain ``flow -> first -> ... -> flow`` when calling ``first`` leads back to
    ``flow``; empty otherwise. ``flow`` itself counts even if ``flows`` has another version
    of it (the one being checked is what would run)."""
    graph = {fid: f for fid, f in flows.items()}
    graph[flow.id] = flow
    seen: set[str] = set()

    def walk(current: str, chain: list[str]) -> list[str]:
        if current == flow.id:
            return chain
        if current in seen or current not in graph:
            return []
        seen.add(current)
        for _, step in iter_steps(graph[current].steps):
            if isinstance(step, FlowStep):
                found = walk(step.flow, [*chain, step.flow])
                if found:
                    return found
        return []

    return walk(first, [flow.id, first])
