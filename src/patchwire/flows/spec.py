"""The flow format: pydantic models of a flow document (``flows/*.yaml``).

A flow is data: an id and version, a trigger, an input schema, and a list of steps. Every
expression is JSONata, evaluated over the run's context::

    $input          the run's input
    $steps.<id>     the output of a completed step (a call step's output is its result)
    $run            {id, flow, version, started_at}
    $item, $index   inside foreach (``as:`` renames $item)
    $error          inside on_error fallback/compensate steps: {code, message, step}

The semantics here are engine-independent: the embedded engine and the Temporal engine run
the same documents. Checks that need the whole document or other documents (expressions
compile, actions and sub-flows exist, step ids unique) live in ``_loader.py``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

__all__ = [
    "STEP_KINDS",
    "ApproveStep",
    "CallStep",
    "CodeStep",
    "EmitStep",
    "FailStep",
    "FlowSpec",
    "FlowStep",
    "ForeachStep",
    "IfStep",
    "Limits",
    "OnError",
    "ParallelStep",
    "ScheduleTrigger",
    "Step",
    "StepRetry",
    "SwitchStep",
    "ToolTrigger",
    "TransformStep",
    "Trigger",
    "WaitStep",
    "WebhookTrigger",
    "parse_duration",
]

from patchwire.connectors.spec import CODE_REF_PATTERN, NAME_PATTERN

FLOW_ID_PATTERN = r"^[a-z][a-z0-9_]*$"
STEP_ID_PATTERN = r"^[a-z][a-z0-9_]*$"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``"30s"``, ``"5m"``, ``"1.5h"``, ``"2d"``, ``"250ms"`` or a number."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like '30s', '5m', '2h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: write a number of seconds or text like "
                         "'30s', '5m', '2h', '1d'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, Field(description="seconds, or text like '30s', '5m', '2h', '1d'")]


class _Spec(BaseModel):
    # Unknown keys are errors: a typo like `argz:` must not be silently ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# -- triggers -------------------------------------------------------------------------------


class ScheduleTrigger(_Spec):
    cron: str = Field(description="five-field cron expression, e.g. '0 2 * * *'")
    timezone: str = Field("UTC", description="IANA time zone the cron is read in")
    missed: Literal["skip", "once", "all"] = Field(
        "once", description="slots missed while down: skip them, run the latest once, or all")
    input: dict[str, Any] = Field(default_factory=dict, description="the runs' input")


class WebhookTrigger(_Spec):
    source: str
    filter: str | None = Field(None, description="JSONata over the event; runs when true")
    input: str | None = Field(None, description="JSONata mapping the event to the run's input")


class ToolTrigger(_Spec):
    name: str | None = Field(None, pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    confirm: bool = False
    read_only: bool = False


class Trigger(_Spec):
    manual: bool = Field(True, description="can be started from the CLI and API")
    schedule: list[ScheduleTrigger] = Field(default_factory=list)
    webhook: list[WebhookTrigger] = Field(default_factory=list)
    tool: ToolTrigger | None = None

    @field_validator("schedule", "webhook", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @field_validator("tool", mode="before")
    @classmethod
    def _tool_shorthand(cls, v: Any) -> Any:
        return {} if v is True else (None if v is False else v)


# -- step building blocks -------------------------------------------------------------------


class StepRetry(_Spec):
    """Attempts of one step (1 = no retry), with capped exponential backoff and full jitter."""

    attempts: int = Field(1, ge=1, le=100)
    backoff: Duration = 1.0
    max_backoff: Duration = 300.0
    multiplier: float = Field(2.0, ge=1.0, le=10.0)

    @field_validator("backoff", "max_backoff", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float:
        return parse_duration(v)


class Limits(_Spec):
    """Bounds of JSONata evaluations, over the settings' ``expression_timeout`` and
    ``expression_max_depth``: a flow's apply to its expressions, a step's to that step's
    own expressions (not to the steps nested in it) and override the flow's."""

    expression_timeout: Duration | None = Field(
        None, gt=0, allow_inf_nan=False, description="how long one evaluation may take")
    expression_max_depth: int | None = Field(
        None, ge=1, description="how deeply an evaluation may nest (recursion)")

    @field_validator("expression_timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)


class OnError(_Spec):
    """What a step's failure (after its retries) does to the run."""

    then: Literal["fail", "continue"] = Field(
        "fail", description="fail the run, or continue with this step's output null")
    fallback: list[Step] = Field(default_factory=list,
                                 description="steps run instead; their last output is this "
                                             "step's output, and the run continues")
    compensate: list[Step] = Field(default_factory=list,
                                   description="steps that undo earlier effects, run before "
                                               "the run fails")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"then": v} if isinstance(v, str) else v


class _StepBase(_Spec):
    id: str = Field(pattern=STEP_ID_PATTERN, description="unique in the flow; $steps.<id>")
    description: str = ""
    when: str | None = Field(None, description="JSONata; the step is skipped unless true")
    retry: StepRetry | None = None
    timeout: Duration | None = None
    on_error: OnError | None = None
    limits: Limits | None = Field(None, description="JSONata bounds of this step's expressions")

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)


class CallStep(_StepBase):
    call: str = Field(description="connector.action")
    connection: str | None = Field(
        None, description="connection name; '=' then JSONata to compute it (e.g. '=$input.c')")
    args: dict[str, Any] | str = Field(
        default_factory=dict,
        description="JSONata per argument (a mapping), or one JSONata giving the whole object")


class CodeStep(_StepBase):
    """Custom code of the deployment's own files (``code_paths``), called as
    ``await function(input, client)``: ``client`` is bound to a connection of
    ``connector`` (None without one). Its result is the step's output, like a call's."""

    code: str = Field(pattern=CODE_REF_PATTERN,
                      description="`package.module:function`, an async function")
    input: str | dict[str, Any] = Field(
        default_factory=dict, description="JSONata (whole or per field): the function's input")
    connector: str | None = Field(
        None, pattern=NAME_PATTERN,
        description="the connector whose connection the function's client is bound to")
    connection: str | None = Field(
        None, description="connection name (default: the connector's only one, or the run's "
        "end user's); '=' then JSONata to compute it")

    @model_validator(mode="after")
    def _connection_needs_connector(self) -> CodeStep:
        if self.connection is not None and self.connector is None:
            raise ValueError("a code step's `connection` needs its `connector`")
        return self

    @property
    def action(self) -> str:
        """The name the call path knows this step's code by (``patchwire.calls``'
        ``code_step_action`` reads it): ``code:<ref>``, ``@<connector>`` when bound to one."""
        return f"code:{self.code}" + (f"@{self.connector}" if self.connector else "")


class TransformStep(_StepBase):
    transform: str = Field(description="JSONata; its value is this step's output")


class IfStep(_StepBase):
    if_: str = Field(alias="if", description="JSONata condition")
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


class SwitchStep(_StepBase):
    switch: str = Field(description="JSONata; its value picks the case")
    cases: dict[str, list[Step]]
    default: list[Step] = Field(default_factory=list)

    @field_validator("cases", mode="before")
    @classmethod
    def _case_keys(cls, v: Any) -> Any:
        # YAML reads `1:` and `true:` as a number and a boolean; a case is matched as text
        if isinstance(v, dict):
            return {(str(k).lower() if isinstance(k, bool) else str(k)): steps
                    for k, steps in v.items()}
        return v


class ForeachStep(_StepBase):
    foreach: str = Field(description="JSONata giving a list")
    as_: str = Field("item", alias="as", pattern=STEP_ID_PATTERN)
    concurrency: int = Field(1, ge=1, le=1000)
    max_items: int = Field(10_000, ge=1, le=1_000_000)
    do: list[Step]


class ParallelStep(_StepBase):
    parallel: dict[str, list[Step]] = Field(description="named branches run concurrently")


class WaitStep(_StepBase):
    wait: Duration | None = Field(None, description="how long")
    until: str | None = Field(None, description="JSONata giving an ISO 8601 time")

    @field_validator("wait", mode="before")
    @classmethod
    def _wait(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)

    @model_validator(mode="after")
    def _one_of(self) -> WaitStep:
        if (self.wait is None) == (self.until is None):
            raise ValueError("a wait step needs exactly one of `wait` (a duration) and `until`")
        return self


class ApproveStep(_StepBase):
    approve: str = Field(description="JSONata giving the message a person sees")
    approve_timeout: Duration = Field(86_400.0, alias="timeout_after",
                                      description="how long the request stays open")
    on_timeout: Literal["fail", "deny", "approve"] = "fail"

    @field_validator("approve_timeout", mode="before")
    @classmethod
    def _approve_timeout(cls, v: Any) -> Any:
        return parse_duration(v)


class EmitStep(_StepBase):
    emit: str = Field(description="event type, e.g. ticket.created")
    data: str = Field("$steps", description="JSONata giving the event's data")


class FlowStep(_StepBase):
    flow: str = Field(pattern=FLOW_ID_PATTERN, description="id of the sub-flow")
    input: str | dict[str, Any] = Field(default_factory=dict,
                                        description="JSONata (whole or per field)")


class FailStep(_StepBase):
    fail: str = Field(description="JSONata giving the error message")
    code: str = "flow_failed"


STEP_KINDS = ("call", "transform", "if", "switch", "foreach", "parallel", "wait", "approve",
              "emit", "flow", "fail", "code")


def _step_kind(v: Any) -> str | None:
    if isinstance(v, BaseModel):
        for kind, model in _MODELS.items():
            if isinstance(v, model):
                return kind
        return None
    if not isinstance(v, dict):
        return None
    found = [k for k in STEP_KINDS if k in v]
    if "fail" in found and "code" in found:
        found.remove("code")  # a fail step's `code` is its error code, not custom code
    if not found and "until" in v:
        return "wait"
    return found[0] if len(found) == 1 else None


Step = Annotated[
    Annotated[CallStep, Tag("call")]
    | Annotated[TransformStep, Tag("transform")]
    | Annotated[IfStep, Tag("if")]
    | Annotated[SwitchStep, Tag("switch")]
    | Annotated[ForeachStep, Tag("foreach")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[ApproveStep, Tag("approve")]
    | Annotated[EmitStep, Tag("emit")]
    | Annotated[FlowStep, Tag("flow")]
    | Annotated[FailStep, Tag("fail")]
    | Annotated[CodeStep, Tag("code")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step has exactly one of: " + ", ".join(STEP_KINDS),
    ),
]

_MODELS: dict[str, type[_StepBase]] = {
    "call": CallStep, "transform": TransformStep, "if": IfStep, "switch": SwitchStep,
    "foreach": ForeachStep, "parallel": ParallelStep, "wait": WaitStep,
    "approve": ApproveStep, "emit": EmitStep, "flow": FlowStep, "fail": FailStep,
    "code": CodeStep,
}


class FlowSpec(_Spec):
    id: str = Field(pattern=FLOW_ID_PATTERN, description="lower snake_case, unique")
    version: int = Field(1, ge=1, description="bump when the steps change; runs keep theirs")
    title: str = ""
    description: str = ""
    trigger: Trigger = Field(default_factory=Trigger)
    input: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema (2020-12) of the input; checked before a run starts")
    steps: list[Step] = Field(min_length=1)
    output: str | None = Field(None, description="JSONata over the context; the run's output")
    concurrency: int | None = Field(None, ge=1, description="runs of this flow in flight")
    retention: Duration | None = Field(
        None, description="finished runs older than this are deleted (default: kept)")
    limits: Limits | None = Field(None, description="JSONata bounds of the flow's expressions")

    @field_validator("retention", mode="before")
    @classmethod
    def _retention(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)


def step_kind(step: _StepBase) -> str:
    """``"call"``, ``"foreach"``... of a parsed step."""
    kind = _step_kind(step)
    assert kind is not None
    return kind


for _model in (OnError, IfStep, SwitchStep, ForeachStep, ParallelStep, FlowSpec):
    _model.model_rebuild()
