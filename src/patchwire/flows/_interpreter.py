"""The flow interpreter: the semantics of every step kind, independent of the engine.

It walks a run's steps in order. A step whose key is in ``done`` is not run again: its
recorded output is put back in scope (that is how a resumed run replays). Everything that
touches the world — calls, checkpoints, time, approvals, sub-flows, events — goes through
:class:`Effects`, which the embedded engine implements on the store (and the Temporal engine
as activities), so both run the same documents the same way.

Step keys are paths, stable across replays: ``notify``, ``check.then.notify``,
``each[3].lookup``, ``both.left.fetch``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from patchwire.expressions import ExpressionLimits
from patchwire.flows._context import (
    Scope,
    StepFailure,
    Suspend,
    evaluate,
    evaluate_template,
    truthy,
)
from patchwire.flows.spec import (
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
    ParallelStep,
    StepRetry,
    SwitchStep,
    TransformStep,
    WaitStep,
    step_kind,
)

__all__ = ["Effects", "Interpreter", "RunProgress"]

_NO_RETRY = StepRetry()


class Effects(Protocol):
    """What the interpreter needs from an engine."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    async def call(self, action: str, arguments: Any, connection: str | None, *,
                   idempotency_key: str) -> Any: ...

    async def checkpoint(self, key: str, kind: str, status: str, output: Any,
                         error: dict[str, Any] | None, attempts: int, started_at: float,
                         input: Any = None) -> None:
        """Record a step's state; ``input`` is what it was given (a call's arguments, an
        approval's message, a sub-flow's input, an event's data), for the run timeline."""
        ...

    async def approval(self, key: str, message: Any, open_for: float) -> dict[str, Any]:
        """File (once per key) or read the approval for a step: ``{status, decided_by,
        reason, expires_at}``, status being pending, approved, denied or expired."""
        ...

    async def child_run(self, key: str, flow: str, input: Any) -> dict[str, Any]:
        """Start (once per key) or read a sub-flow run: ``{status, output, error}``."""
        ...

    async def emit(self, key: str, type: str, data: Any) -> str: ...


@dataclass(slots=True)
class RunProgress:
    """What is durable of a run: outputs of finished steps, state of waiting ones."""

    done: dict[str, Any] = field(default_factory=dict)
    waiting: dict[str, Any] = field(default_factory=dict)


class Interpreter:
    def __init__(self, flow: FlowSpec, effects: Effects, progress: RunProgress,
                 scope: Scope, *, random: Callable[[], float] = random.random) -> None:
        self.flow = flow
        self.effects = effects
        self.progress = progress
        self.scope = scope
        #: what each step in flight was given, recorded with its checkpoint
        self.inputs: dict[str, Any] = {}
        #: backoff jitter; a Temporal workflow passes its deterministic one
        self.random = random
        self._flow_limits = _limits(flow.limits)
        #: each step's expression limits (its own over the flow's), by step identity
        self._step_limits: dict[int, ExpressionLimits | None] = {}

    def _limits(self, step: Any) -> ExpressionLimits | None:
        key = id(step)
        if key not in self._step_limits:
            own, flow = _limits(step.limits), self._flow_limits
            self._step_limits[key] = own.over(flow) if own and flow else own or flow
        return self._step_limits[key]

    def _eval(self, source: str, scope: Scope, step: Any) -> Any:
        """A step's expression, within the step's limits."""
        return evaluate(source, scope, self._limits(step))

    async def run(self) -> Any:
        """Run the flow to its end; the run's output. Raises StepFailure or Suspend."""
        last = await self.steps(self.flow.steps, self.scope, "")
        if self.flow.output is not None:
            return evaluate(self.flow.output, self.scope, self._flow_limits)
        return last

    async def steps(self, steps: Sequence[Any], scope: Scope, prefix: str) -> Any:
        last: Any = None
        for step in steps:
            last = await self.step(step, scope, prefix + step.id)
        return last

    async def step(self, step: Any, scope: Scope, key: str) -> Any:
        done = self.progress.done
        if key in done:
            scope.steps[step.id] = done[key]
            return done[key]
        if step.when is not None and not truthy(self._eval(step.when, scope, step)):
            return None  # skipped: `$steps.<id>` stays undefined
        kind = step_kind(step)
        policy: StepRetry = step.retry or _NO_RETRY
        started = self.effects.now()
        attempt = 0
        while True:
            attempt += 1
            try:
                if step.timeout is not None:
                    async with asyncio.timeout(step.timeout):
                        output = await self._run_kind(kind, step, scope, key)
                else:
                    output = await self._run_kind(kind, step, scope, key)
                status = "succeeded"
                error = None
                break
            except TimeoutError:
                failure = StepFailure("timeout", f"step {key} took longer than "
                                      f"{step.timeout:g} s", step=key)
            except StepFailure as exc:
                failure = exc
                failure.step = failure.step or key
            if not failure.retryable or attempt >= policy.attempts:
                output, status, error = await self._on_error(step, scope, key, failure,
                                                             attempt, started)
                break
            await self.effects.sleep(_backoff(policy, attempt, self.random()))
        await self.effects.checkpoint(key, kind, status, output, error, attempt, started,
                                      self.inputs.pop(key, None))
        done[key] = output
        scope.steps[step.id] = output
        return output

    async def _on_error(self, step: Any, scope: Scope, key: str, failure: StepFailure,
                        attempts: int, started: float) -> tuple[Any, str, dict[str, Any]]:
        handler = step.on_error
        error = failure.to_dict()
        if handler is None or (handler.then == "fail" and not handler.fallback):
            if handler is not None and handler.compensate:
                await self.steps(handler.compensate, scope.child(error=error),
                                 f"{key}.compensate.")
            await self.effects.checkpoint(key, step_kind(step), "failed", None, error,
                                          attempts, started, self.inputs.pop(key, None))
            raise failure
        if handler.fallback:
            output = await self.steps(handler.fallback, scope.child(error=error),
                                      f"{key}.fallback.")
            return output, "fallback", error
        return None, "continued", error

    async def _run_kind(self, kind: str, step: Any, scope: Scope, key: str) -> Any:
        match kind:
            case "call":
                return await self._call(step, scope, key)
            case "transform":
                assert isinstance(step, TransformStep)
                return self._eval(step.transform, scope, step)
            case "if":
                assert isinstance(step, IfStep)
                taken = "then" if truthy(self._eval(step.if_, scope, step)) else "else"
                branch = step.then if taken == "then" else step.else_
                return await self.steps(branch, scope, f"{key}.{taken}.")
            case "switch":
                return await self._switch(step, scope, key)
            case "foreach":
                return await self._foreach(step, scope, key)
            case "parallel":
                return await self._parallel(step, scope, key)
            case "wait":
                return await self._wait(step, scope, key)
            case "approve":
                return await self._approve(step, scope, key)
            case "emit":
                assert isinstance(step, EmitStep)
                data = self.inputs[key] = self._eval(step.data, scope, step)
                event_id = await self.effects.emit(key, step.emit, data)
                return {"event_id": event_id, "type": step.emit}
            case "flow":
                return await self._sub_flow(step, scope, key)
            case "code":
                return await self._code(step, scope, key)
            case "fail":
                assert isinstance(step, FailStep)
                raise StepFailure(step.code, str(self._eval(step.fail, scope, step)),
                                  retryable=False, step=key)
        raise StepFailure("unknown_step", f"unknown step kind {kind!r}", retryable=False)

    async def _call(self, step: CallStep, scope: Scope, key: str) -> Any:
        limits = self._limits(step)
        arguments = (evaluate(step.args, scope, limits) if isinstance(step.args, str)
                     else evaluate_template(step.args, scope, limits))
        connection = _connection_of(step, scope, limits, key)
        self.inputs[key] = ({"arguments": arguments} if connection is None
                            else {"arguments": arguments, "connection": connection})
        return await self.effects.call(step.call, arguments, connection,
                                       idempotency_key=f"{scope.run['id']}:{key}")

    async def _code(self, step: CodeStep, scope: Scope, key: str) -> Any:
        """Custom code: a call of the call path (``step.action``), so each engine runs it as
        it runs a call step (the Temporal engine as its call activity) and it is recorded
        in the call log like one."""
        limits = self._limits(step)
        given = (evaluate(step.input, scope, limits) if isinstance(step.input, str)
                 else evaluate_template(step.input, scope, limits))
        connection = _connection_of(step, scope, limits, key)
        self.inputs[key] = ({"input": given} if connection is None
                            else {"input": given, "connection": connection})
        return await self.effects.call(step.action, given, connection,
                                       idempotency_key=f"{scope.run['id']}:{key}")

    async def _switch(self, step: SwitchStep, scope: Scope, key: str) -> Any:
        value = self._eval(step.switch, scope, step)
        label = value if isinstance(value, str) else _label(value)
        branch = step.cases.get(label)
        if branch is None:
            return await self.steps(step.default, scope, f"{key}.default.")
        return await self.steps(branch, scope, f"{key}.{label}.")

    async def _foreach(self, step: ForeachStep, scope: Scope, key: str) -> Any:
        items = self._eval(step.foreach, scope, step)
        if items is None:
            items = []
        elif not isinstance(items, list):
            items = [items]
        if len(items) > step.max_items:
            raise StepFailure("too_many_items", f"foreach {key} got {len(items)} items, over "
                              f"its max_items of {step.max_items}", retryable=False)
        gate = asyncio.Semaphore(step.concurrency)

        async def one(index: int, item: Any) -> Any:
            async with gate:
                child = scope.child(**{step.as_: item, "index": index})
                return await self.steps(step.do, child, f"{key}[{index}].")

        return await _all([one(i, item) for i, item in enumerate(items)])

    async def _parallel(self, step: ParallelStep, scope: Scope, key: str) -> Any:
        names = list(step.parallel)
        results = await _all([self.steps(step.parallel[n], scope.child(), f"{key}.{n}.")
                              for n in names])
        return dict(zip(names, results, strict=True))

    async def _wait(self, step: WaitStep, scope: Scope, key: str) -> Any:
        state = self.progress.waiting.get(key)
        if state is None:
            if step.wait is not None:
                until = self.effects.now() + step.wait
            else:
                assert step.until is not None
                until = _timestamp(self._eval(step.until, scope, step), key)
            state = {"until": until}
            await self.effects.checkpoint(key, "wait", "waiting", state, None, 1,
                                          self.effects.now())
            self.progress.waiting[key] = state
        until = float(state["until"])
        if self.effects.now() < until:
            raise Suspend(until)
        return {"waited_until": datetime.fromtimestamp(until).astimezone().isoformat()}

    async def _approve(self, step: ApproveStep, scope: Scope, key: str) -> Any:
        message = self.inputs[key] = self._eval(step.approve, scope, step)
        state = await self.effects.approval(key, message, step.approve_timeout)
        status = state["status"]
        if status == "expired":
            status = {"fail": "timeout", "deny": "denied", "approve": "approved"}[step.on_timeout]
        if status in ("approved", "used"):
            return {"approved": True, "by": state.get("decided_by") or "timeout",
                    "reason": state.get("reason")}
        if status == "denied":
            by = state.get("decided_by") or "timeout"
            reason = f": {state['reason']}" if state.get("reason") else ""
            raise StepFailure("denied", f"{by} denied {key}{reason}", retryable=False)
        if status == "timeout":
            raise StepFailure("approval_timeout", f"nobody decided {key} in time",
                              retryable=False)
        raise Suspend(state.get("expires_at"))

    async def _sub_flow(self, step: FlowStep, scope: Scope, key: str) -> Any:
        limits = self._limits(step)
        child_input = (evaluate(step.input, scope, limits) if isinstance(step.input, str)
                       else evaluate_template(step.input, scope, limits))
        self.inputs[key] = child_input
        state = await self.effects.child_run(key, step.flow, child_input)
        status = state["status"]
        if status == "succeeded":
            return state.get("output")
        if status in ("failed", "cancelled"):
            err = state.get("error") or {}
            raise StepFailure("sub_flow_failed", f"sub-flow {step.flow} {status}: "
                              f"{err.get('message', '')}".rstrip(": "), retryable=False)
        raise Suspend(None)


async def _all(coros: list[Any]) -> list[Any]:
    """Run concurrently; the first failure wins, a suspension only if nothing failed (the
    other branches reach their own checkpoints first, so less is redone on resume)."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    suspend: Suspend | None = None
    for r in results:
        if isinstance(r, StepFailure):
            raise r
        if isinstance(r, Suspend):
            if suspend is None or (r.until is not None and
                                   (suspend.until is None or r.until < suspend.until)):
                suspend = r
        elif isinstance(r, BaseException):
            raise r
    if suspend is not None:
        raise suspend
    return list(results)


def _limits(spec: Limits | None) -> ExpressionLimits | None:
    if spec is None:
        return None
    return ExpressionLimits(spec.expression_timeout, spec.expression_max_depth)


def _backoff(policy: StepRetry, attempt: int, draw: float) -> float:
    cap = min(policy.max_backoff, policy.backoff * policy.multiplier ** (attempt - 1))
    return draw * cap  # full jitter


def _label(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _timestamp(value: Any, key: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / (1000 if value > 1e11 else 1)  # JSONata's $millis()
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                raise StepFailure("invalid_time", f"{key}: {value!r} has no time zone",
                                  retryable=False)
            return parsed.timestamp()
    raise StepFailure("invalid_time", f"{key}: until gave {value!r}, not an ISO 8601 time",
                      retryable=False)


def _connection_of(step: CallStep | CodeStep, scope: Scope, limits: ExpressionLimits | None,
                   key: str) -> str | None:
    """The connection a call or code step names: as written, or ``=expression`` evaluated
    over the run's scope."""
    connection = step.connection
    if connection is not None and connection.startswith("="):
        connection = evaluate(connection[1:], scope, limits)
        if connection is not None and not isinstance(connection, str):
            raise StepFailure("invalid_connection", f"the connection expression of {key} "
                              f"gave {connection!r}, not a connection name", retryable=False)
    return connection
