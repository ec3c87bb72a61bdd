"""What flow expressions see, and how they are evaluated.

Expressions get the run's context both as data and as bindings, so ``$steps.lookup.id``
and ``steps.lookup.id`` mean the same. Only step outputs and the input enter the context:
everything an expression can read is already durable, which makes replays deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from patchwire.expressions import ExpressionError, ExpressionLimits, compile_expression, truthy

__all__ = ["Scope", "StepFailure", "Suspend", "evaluate", "truthy"]


@dataclass(slots=True)
class Scope:
    """The variables of one place in a run: ``steps`` holds the outputs visible there."""

    input: Any
    run: dict[str, Any]
    steps: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)

    def child(self, **variables: Any) -> Scope:
        """A scope for a foreach iteration or a branch: sees everything here; its own step
        outputs stay its own."""
        return Scope(self.input, self.run, dict(self.steps), {**self.variables, **variables})

    def bindings(self) -> dict[str, Any]:
        return {"input": self.input, "steps": self.steps, "run": self.run, **self.variables}


class StepFailure(Exception):
    """A step failed for good (after its retries): ``code`` and a readable ``message``."""

    def __init__(self, code: str, message: str, *, retryable: bool = True,
                 step: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.step = step

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "step": self.step}


class Suspend(Exception):
    """The run waits (a timer, an approval, a sub-flow): persist and release it; resume at
    ``until`` (epoch seconds) or when woken."""

    def __init__(self, until: float | None) -> None:
        super().__init__(until)
        self.until = until


def evaluate(source: str, scope: Scope, limits: ExpressionLimits | None = None) -> Any:
    """Evaluate a JSONata expression in ``scope`` within ``limits`` (over the settings');
    a failure is a non-retryable StepFailure."""
    bindings = scope.bindings()
    try:
        return compile_expression(source).evaluate(bindings, bindings, limits=limits)
    except ExpressionError as exc:
        raise StepFailure("expression_error", str(exc), retryable=False) from exc


def evaluate_template(value: Any, scope: Scope, limits: ExpressionLimits | None = None) -> Any:
    """Arguments written as a mapping: strings are expressions, other values literals."""
    if isinstance(value, str):
        return evaluate(value, scope, limits)
    if isinstance(value, Mapping):
        return {k: evaluate_template(v, scope, limits) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate_template(v, scope, limits) for v in value]
    return value
