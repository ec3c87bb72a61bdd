"""A flow step's call, as both engines make it: through the one call path, with the
step's idempotency key, its failure said as retryable or not."""

from __future__ import annotations

from typing import Any

from patchwire.calls import CallRequest
from patchwire.errors import CallError
from patchwire.flows._context import StepFailure
from patchwire.ports import Calls

__all__ = ["call_step"]


async def call_step(calls: Calls, action: str, arguments: Any, connection: str | None, *,
                    run_id: str, idempotency_key: str, end_user: str | None = None) -> Any:
    """A flow step's call: the action's result, or a StepFailure saying whether retrying
    the step may help. The idempotency key goes in the connector's idempotency header
    (unless the request has one), so a step re-run after a crash is applied once.
    ``end_user``: the run's end user, whose connections alone the call may use."""
    try:
        calls.action(action)
    except CallError as exc:
        raise StepFailure(exc.code, exc.message, retryable=False) from exc
    except Exception as exc:
        raise StepFailure("unknown_action", str(exc), retryable=False) from exc
    try:
        outcome = await calls.execute(CallRequest(
            action, {} if arguments is None else arguments, connection, run_id=run_id,
            idempotency_key=idempotency_key, end_user=end_user))
    except CallError as exc:
        transient = exc.code in ("timeout", "transport_error", "rate_limited",
                                 "circuit_open", "upstream_error")
        raise StepFailure(exc.code, exc.message, retryable=transient) from exc
    except Exception as exc:
        raise StepFailure(getattr(exc, "code", "error"), str(exc),
                          retryable=False) from exc
    return outcome.result
