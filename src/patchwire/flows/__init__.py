"""Flows: declarative multi-step workflows over connector actions (``flows/*.yaml``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from patchwire.flows._loader import (
    check_flow,
    check_flow_references,
    iter_steps,
    load_flow_file,
    load_flow_text,
)
from patchwire.flows._registry import FlowRegistry, builtin_flow_texts
from patchwire.flows.spec import (
    STEP_KINDS,
    ApproveStep,
    CallStep,
    CodeStep,
    EmitStep,
    FailStep,
    FlowSpec,
    FlowStep,
    ForeachStep,
    IfStep,
    Limits,
    OnError,
    ParallelStep,
    ScheduleTrigger,
    Step,
    StepRetry,
    SwitchStep,
    ToolTrigger,
    TransformStep,
    Trigger,
    WaitStep,
    WebhookTrigger,
    parse_duration,
    step_kind,
)

from ._engine import FlowEngine
from ._factory import create_engine
from ._protocol import Engine, Executor, FlowHost, RemoteEngine
from ._registry import flow_files
from ._runs import FINISHED, RunRecord, StepRecord, digest_of

if TYPE_CHECKING:
    from ._temporal import TemporalEngine, TemporalOptions


def __getattr__(name: str) -> Any:
    # the Temporal engine needs the optional SDK (pip install 'patchwire[temporal]'):
    # imported when asked for, so the package loads without it
    if name in ("TemporalEngine", "TemporalOptions"):
        from patchwire.flows import _temporal

        return getattr(_temporal, name)
    raise AttributeError(f"module 'patchwire.flows' has no attribute {name!r}")

__all__ = [
    "FINISHED",
    "STEP_KINDS",
    "ApproveStep",
    "CallStep",
    "CodeStep",
    "EmitStep",
    "Engine",
    "Executor",
    "FailStep",
    "FlowEngine",
    "FlowHost",
    "FlowRegistry",
    "FlowSpec",
    "FlowStep",
    "ForeachStep",
    "IfStep",
    "Limits",
    "OnError",
    "ParallelStep",
    "RemoteEngine",
    "RunRecord",
    "ScheduleTrigger",
    "Step",
    "StepRecord",
    "StepRetry",
    "SwitchStep",
    "TemporalEngine",
    "TemporalOptions",
    "ToolTrigger",
    "TransformStep",
    "Trigger",
    "WaitStep",
    "WebhookTrigger",
    "builtin_flow_texts",
    "check_flow",
    "check_flow_references",
    "create_engine",
    "digest_of",
    "flow_files",
    "flow_json_schema",
    "iter_steps",
    "load_flow_file",
    "load_flow_text",
    "parse_duration",
    "step_kind",
]

_DURATION_FIELDS = ("timeout", "backoff", "max_backoff", "wait", "timeout_after", "retention")
_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$"},
    ],
    "description": "seconds, or text like '30s', '5m', '2h', '1d'",
}


def flow_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of the flow format, for editors and `patchwire flow schema`.

    pydantic describes the models' output; the documents may also use the shorthands the
    models convert before validating, so those are added: durations as text, a single
    schedule or webhook instead of a list, ``tool: true``, ``on_error: continue``.
    """
    schema = FlowSpec.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema["$defs"]
    for model in (*defs.values(), schema):
        for name, prop in model.get("properties", {}).items():
            if name in _DURATION_FIELDS:
                model["properties"][name] = _with_durations(prop)
    trigger = defs["Trigger"]["properties"]
    for key in ("schedule", "webhook"):
        trigger[key] = {"anyOf": [trigger[key]["items"], trigger[key]],
                        "description": f"one {key} trigger or a list of them"}
    trigger["tool"]["anyOf"].insert(0, {"type": "boolean"})
    defs["OnError"] = {
        "anyOf": [{"type": "string", "enum": ["fail", "continue"]}, defs["OnError"]],
        "description": defs["OnError"].get("description", ""),
    }
    # `wait` and `until` are both optional in the model, which wants exactly one of them
    defs["WaitStep"]["oneOf"] = [{"required": ["wait"]}, {"required": ["until"]}]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Patchwire flow"
    return schema


def _with_durations(prop: dict[str, Any]) -> dict[str, Any]:
    """A number-of-seconds property that also accepts duration text (``"30s"``)."""
    if prop.get("type") == "number":
        return {k: v for k, v in prop.items() if k not in ("type", "description")} | {
            "anyOf": _DURATION_SCHEMA["anyOf"], "description": _DURATION_SCHEMA["description"]}
    if "anyOf" in prop:
        members = [m for m in prop["anyOf"] if m.get("type") != "number"]
        return {**prop, "anyOf": [*_DURATION_SCHEMA["anyOf"], *members]}
    return prop
