"""The tool call path: what happens between a model asking for a tool and its answer.

    look up the tool → normalise (strict-mode nulls) → validate the arguments, once
    (``CallPath.validate``) → approval gate (confirm tools) → the one call path
    (``CallPath.execute``) → shape the result → record the call in the tool audit

:meth:`ToolInvoker.invoke` never raises for a tool failure: every outcome is a
:class:`ToolResult` whose ``text`` is written for the model — which field is wrong and what
was expected, whether retrying can help, who must act — and never holds a stack trace or a
secret. The MCP server, the chat loop and the REST API all call tools through it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from patchwire.calls import CallRequest
from patchwire.connectors.spec import ToolSpec
from patchwire.errors import (
    AuthError,
    CallError,
    CallTimeoutError,
    CircuitOpenError,
    ConflictError,
    FlowInputError,
    InputValidationError,
    LookupFailed,
    NotFoundError,
    PatchwireError,
    RateLimitedError,
    ReauthRequired,
    TransportError,
    UnknownConnection,
    UpstreamValidationError,
    ValidationProblem,
)
from patchwire.expressions import Expression, compile_expression
from patchwire.ids import new_id
from patchwire.observability import TOOL_CALLS
from patchwire.ports import (
    ConnectionDirectory,
    HasCalls,
    HasConnectors,
    HasSettings,
    HasStore,
)
from patchwire.store.records import utcnow
from patchwire.store.tools import ApprovalRecord, ToolCallRecord, ToolRepository
from patchwire.tools._catalog import Tool, ToolCatalog, ToolFilter
from patchwire.tools._result import ToolResult, ToolStatus
from patchwire.tools._shaping import shape_result
from patchwire.tools._strict_arguments import drop_strict_nulls

if TYPE_CHECKING:
    from patchwire.flows import Engine
    from patchwire.sync.spec import SyncSpec

__all__ = [
    "ConfirmCallback",
    "Decision",
    "ToolHost",
    "ToolInvoker",
    "ToolResult",
    "ToolStatus",
    "redact_arguments",
]

log = logging.getLogger("patchwire.tools")


#: argument names whose values never reach the audit or an approval request
_SECRET_NAME = re.compile(
    r"pass(word|phrase)?|secret|token|api[_-]?key|authori[sz]ation|credential|private[_-]?key"
    r"|card[_-]?number|cvc|cvv|ssn", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Decision:
    """A person's answer to "may this tool call run?"."""

    approved: bool
    decided_by: str
    reason: str | None = None


#: Asks a person right now (MCP elicitation). Returns None when it cannot ask; the invoker
#: then files a pending approval and tells the model so.
ConfirmCallback = Callable[[Tool, Mapping[str, Any]], Awaitable[Decision | None]]


def redact_arguments(arguments: Any) -> Any:
    """A copy with the values of secret-looking keys replaced by ``***``."""
    if isinstance(arguments, Mapping):
        return {k: "***" if isinstance(k, str) and _SECRET_NAME.search(k)
                else redact_arguments(v) for k, v in arguments.items()}
    if isinstance(arguments, list):
        return [redact_arguments(v) for v in arguments]
    return arguments


def _fingerprint(tool: Tool, arguments: Mapping[str, Any]) -> str:
    blob = orjson.dumps([tool.target, tool.connection, arguments],
                        option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(blob).hexdigest()


class ToolHost(HasCalls, HasStore, HasSettings, HasConnectors, ConnectionDirectory, Protocol):
    """What the tool invoker is given (the runtime or the facade, opened): the call path,
    the store (approvals, tool settings), the settings (where syncs are), the connectors
    and connections the catalog offers, and the tool audit."""

    def audit_tool_call(self, record: ToolCallRecord) -> None:
        """Add a tool call to the tool audit (written in batches)."""
        ...

    async def flush(self) -> None:
        """Write pending call and tool audit records now."""
        ...


class ToolInvoker:
    """Calls tools of a catalog built over ``host``'s connectors and connections.

    ``connections`` scopes the catalog to those connections (an end user's); None offers
    every connection in the store. The catalog is rebuilt when it is older than
    ``catalog_ttl`` seconds, so ``patchwire tools enable`` and new connections show up in
    running servers.
    """

    def __init__(
        self, host: ToolHost, *, connections: Sequence[str] | None = None,
        filter: ToolFilter | None = None,
        approval_ttl: timedelta = timedelta(hours=24), catalog_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic, engine: Engine | None = None,
        flow_wait: float = 30.0, syncs: Iterable[SyncSpec] | None = None,
    ) -> None:
        self._host = host
        self._engine = engine
        self._flow_wait = flow_wait
        # --- records tools (src/patchwire/tools/_records_tool.py): syncs with `tool:`;
        # None: the user's syncs (settings.sync_paths), loaded with the first catalog ---
        self._syncs: dict[str, SyncSpec] | None = (
            None if syncs is None else {s.id: s for s in syncs})
        # --- end records tools ---
        self._connections = list(connections) if connections is not None else None
        self._filter = filter
        self._approval_ttl = approval_ttl
        self._catalog_ttl = catalog_ttl
        self._clock = clock
        self._catalog: ToolCatalog | None = None
        self._built_at = 0.0
        self._projections: dict[str, Expression] = {}

    @property
    def engine(self) -> Engine | None:
        """The flow engine that runs flow tools (None: no flow tools)."""
        return self._engine

    @property
    def repository(self) -> ToolRepository:
        return ToolRepository(self._host.store)

    async def tool_calls(self, *, session_id: str | None = None, tool: str | None = None,
                         validation_failed: bool | None = None,
                         limit: int = 100) -> list[ToolCallRecord]:
        """The tool audit, newest first, including calls not yet written to the store."""
        await self._host.flush()
        return await self.repository.list_tool_calls(
            session_id=session_id, tool=tool, validation_failed=validation_failed, limit=limit)

    def use_syncs(self, syncs: Iterable[SyncSpec]) -> None:
        """Reloaded definitions: the next catalog offers the records tools of ``syncs``
        and reads the connectors and the engine's flows again (not after the TTL)."""
        self._syncs = {s.id: s for s in syncs}
        self._catalog = None

    async def catalog(self, *, refresh: bool = False) -> ToolCatalog:
        """The current tools."""
        now = self._clock()
        if not refresh and self._catalog is not None and now - self._built_at < self._catalog_ttl:
            return self._catalog
        settings = await self.repository.tool_settings()
        overrides = {target: ToolSpec.model_validate(s) for target, s in settings.items()}
        known = await self._host.list_connections()
        if self._connections is not None:
            names = {c.name for c in known}
            missing = [n for n in self._connections if n not in names]
            if missing:
                raise UnknownConnection(
                    f"no connection named {', '.join(map(repr, missing))} "
                    f"(known: {', '.join(sorted(names)) or 'none'})")
            wanted = set(self._connections)
            known = [c for c in known if c.name in wanted]
        flows = list(self._engine.flows()) if self._engine is not None else []
        catalog = ToolCatalog.build(
            self._host.connectors, overrides=overrides,
            connections=[(c.name, c.connector) for c in known], filter=self._filter,
            flows=flows)
        # --- records tools: a search over each sync's records, bound to connections ---
        from patchwire.tools._records_tool import load_syncs, with_records_tools

        if self._syncs is None:
            self._syncs = load_syncs(self._host.settings)
        catalog = with_records_tools(catalog, self._syncs.values(),
                                     [(c.name, c.connector) for c in known], self._filter)
        # --- end records tools ---
        self._catalog, self._built_at = catalog, now
        return catalog

    async def invoke(
        self, name: str, arguments: Mapping[str, Any] | None, *,
        session_id: str | None = None, confirm: ConfirmCallback | None = None,
    ) -> ToolResult:
        """Run one tool call from a model; see the module docstring."""
        started, started_at = time.perf_counter(), utcnow()
        request_id = new_id()
        tool: Tool | None = None
        audit = _Audit()
        try:
            catalog = await self.catalog()
            tool = catalog.find(name) or (await self.catalog(refresh=True)).find(name)
            if tool is None:
                result = _unknown_tool(name, catalog)
            else:
                result = await self._invoke(tool, arguments, session_id, confirm,
                                            request_id, audit)
        except PatchwireError as exc:
            # e.g. the store is unreachable or a scoped connection was removed
            log.warning("tool call %s failed: %s (request %s)", name, exc, request_id)
            result = ToolResult("error", f"The tool could not run: {exc}. This is not caused "
                                "by your arguments; tell the user it is unavailable right now.")
        except Exception:
            # A bug must not reach the model as a traceback.
            log.exception("tool call %s failed unexpectedly (request %s)", name, request_id)
            result = ToolResult("error", "The tool failed because of an internal error in "
                                f"Patchwire (reference {request_id}). This is not caused by "
                                "your arguments; tell the user it is unavailable right now.")
        latency_ms = (time.perf_counter() - started) * 1000
        record = ToolCallRecord(
            id=request_id, session_id=session_id, tool=name[:200],
            target=tool.target if tool else None, connection=tool.connection if tool else None,
            arguments=redact_arguments(arguments) if isinstance(arguments, Mapping) else None,
            validation_failed=result.status == "invalid_arguments", status=result.status,
            error=None if result.status == "ok" else (audit.error or result.text)[:2000],
            latency_ms=latency_ms, approval_id=result.approval_id or audit.approval_id,
            request_id=request_id, started_at=started_at)
        self._host.audit_tool_call(record)
        # observability: tool calls by outcome; a model's unknown tool names stay one label
        TOOL_CALLS.labels(tool.name if tool else "unknown", result.status).inc()
        return result

    async def _invoke(self, tool: Tool, arguments: Mapping[str, Any] | None,
                      session_id: str | None, confirm: ConfirmCallback | None,
                      request_id: str, audit: _Audit) -> ToolResult:
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            return ToolResult("invalid_arguments",
                              f"The arguments of {tool.name} must be a JSON object, not "
                              f"{type(arguments).__name__}. Call it again with an object.")
        args = drop_strict_nulls(tool.input_schema, dict(arguments))
        if tool.kind == "records":  # records tools: answered from the store, no upstream
            from patchwire.tools._records_tool import invoke_records_tool

            return await invoke_records_tool(self._host.store, tool, args, self._syncs or {})
        if tool.kind == "flow":
            return await self._run_flow(tool, args, session_id, confirm, audit)
        # Straight to the call path: validated here, before the approval gate (nothing is
        # filed for arguments that cannot run), and not again when it is sent.
        calls = self._host.calls
        try:
            call = calls.validate(CallRequest(tool.target, args, tool.connection, request_id))
        except InputValidationError as exc:
            return ToolResult("invalid_arguments", _invalid_text(tool, exc.problems))
        approval_id: str | None = None
        if tool.confirm:
            gate = await self._gate(tool, args, session_id, confirm)
            if isinstance(gate, ToolResult):
                audit.approval_id = gate.approval_id
                return gate
            approval_id = audit.approval_id = gate
        try:
            outcome = await calls.execute(call)
        except InputValidationError as exc:  # a path argument that would change the path
            return ToolResult("invalid_arguments", _invalid_text(tool, exc.problems),
                              approval_id=approval_id)
        except PatchwireError as exc:
            audit.error = str(exc)
            return ToolResult("error", _error_text(tool, exc), approval_id=approval_id)
        shaped = shape_result(outcome.result, projection=self._projection(tool),
                              max_bytes=tool.max_result_bytes)
        return ToolResult("ok", shaped.text, shaped.data, approval_id=approval_id,
                          truncated=shaped.truncated)

    async def _run_flow(self, tool: Tool, args: dict[str, Any], session_id: str | None,
                        confirm: ConfirmCallback | None, audit: _Audit) -> ToolResult:
        """A flow tool starts a run and waits (bounded) for its output."""
        if self._engine is None:
            return ToolResult("error", f"{tool.name} runs a flow, and no flow engine runs "
                              "here; tell the user it is unavailable.")
        approval_id: str | None = None
        if tool.confirm:
            gate = await self._gate(tool, args, session_id, confirm)
            if isinstance(gate, ToolResult):
                audit.approval_id = gate.approval_id
                return gate
            approval_id = audit.approval_id = gate
        flow_id = tool.target.removeprefix("flow:")
        try:
            run_id = await self._engine.start_run(flow_id, args, trigger="tool")
        except FlowInputError as exc:
            return ToolResult("invalid_arguments", _invalid_text(tool, exc.problems))
        except PatchwireError as exc:
            return ToolResult("error", f"{tool.name} could not start: {exc}",
                              approval_id=approval_id)
        try:
            run = await self._engine.wait(run_id, max_wait=self._flow_wait)
        except TimeoutError:
            return ToolResult("ok", f"The run {run_id} of {tool.name} was started and is "
                              "still running; its result is not ready yet.",
                              {"run_id": run_id, "status": "running"}, approval_id)
        if run.status == "succeeded":
            shaped = shape_result(run.output, max_bytes=tool.max_result_bytes)
            return ToolResult("ok", shaped.text, shaped.data, approval_id, shaped.truncated)
        if run.status == "waiting":
            return ToolResult("ok", f"The run {run_id} of {tool.name} started and now waits "
                              "(for a person's approval or a timer); it will go on by itself. "
                              "Tell the user.", {"run_id": run_id, "status": "waiting"},
                              approval_id)
        error = run.error or {}
        audit.error = str(error)
        return ToolResult("error", f"{tool.name} failed at step {error.get('step')} "
                          f"({error.get('code')}): {error.get('message')}. Tell the user.",
                          approval_id=approval_id)

    def _projection(self, tool: Tool) -> Expression | None:
        if tool.result is None:
            return None
        expr = self._projections.get(tool.result)
        if expr is None:
            expr = self._projections[tool.result] = compile_expression(tool.result)
        return expr

    # -- approval gate ----------------------------------------------------------------------

    async def _gate(self, tool: Tool, args: Mapping[str, Any], session_id: str | None,
                    confirm: ConfirmCallback | None) -> ToolResult | str:
        """The id of the approval that lets this call run, or the result to give instead.

        An approval is bound to the exact call (tool, connection, arguments): approving a
        refund of 5 € does not let a refund of 500 € through, and one yes runs one call.
        """
        repo = self.repository
        fingerprint = _fingerprint(tool, args)
        now = utcnow()
        for prior in await repo.approvals_for(fingerprint):
            status = prior.effective_status(now)
            if status == "approved":
                if await repo.use_approval(prior.id):
                    return prior.id
                continue  # another call used it first
            if status == "pending":
                return ToolResult("pending_approval", _pending_text(tool, prior.id, again=True),
                                  approval_id=prior.id)
            if status == "denied" and prior.used_at is None:
                await repo.use_approval_denial(prior.id)
                return ToolResult("denied", _denied_text(tool, prior), approval_id=prior.id)
            break  # the newest was used, expired or already reported: ask anew
        decision = await confirm(tool, args) if confirm is not None else None
        approval = ApprovalRecord(
            id=new_id(), kind="tool", subject=tool.name, target=tool.target,
            connection=tool.connection, arguments=redact_arguments(dict(args)),
            fingerprint=fingerprint, session_id=session_id,
            status="pending" if decision is None else
            ("used" if decision.approved else "denied"),
            requested_at=now, expires_at=now + self._approval_ttl if decision is None else None,
            decided_at=None if decision is None else now,
            decided_by=None if decision is None else decision.decided_by[:200],
            reason=None if decision is None else decision.reason,
            used_at=now if decision is not None else None)
        await repo.add_approval(approval)
        if decision is None:
            return ToolResult("pending_approval", _pending_text(tool, approval.id),
                              approval_id=approval.id)
        if not decision.approved:
            return ToolResult("denied", _denied_text(tool, approval), approval_id=approval.id)
        return approval.id


@dataclass(slots=True)
class _Audit:
    error: str | None = None
    approval_id: str | None = None


def _unknown_tool(name: str, catalog: ToolCatalog) -> ToolResult:
    names = catalog.names()
    shown = ", ".join(names[:50]) + (f" and {len(names) - 50} more" if len(names) > 50 else "")
    return ToolResult("unknown_tool", f"There is no tool named {name!r}. "
                      f"Available tools: {shown or 'none'}.")


def _expected(schema: Mapping[str, Any], path: str) -> str | None:
    """What the input schema says about the value at ``path`` ($.a.b[0]), in words."""
    node: Any = schema
    for part in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\"((?:[^\"\\]|\\.)*)\"\]",
                           path):
        key = part[0] or part[2]
        if not isinstance(node, Mapping):
            return None
        node = (node.get("properties") or {}).get(key) if key else node.get("items")
        if node is None:
            return None
    if not isinstance(node, Mapping):
        return None
    if node is schema:
        props = node.get("properties") or {}
        required = set(node.get("required") or ())
        if not props:
            return "no arguments"
        return "arguments " + ", ".join(
            f"{k}{' (required)' if k in required else ''}" for k in props)
    bits: list[str] = []
    if "type" in node:
        t = node["type"]
        bits.append(" or ".join(t) if isinstance(t, list) else str(t))
    if "format" in node:
        bits.append(f"format {node['format']}")
    if "enum" in node:
        bits.append("one of " + ", ".join(orjson.dumps(v).decode() for v in node["enum"]))
    for key, word in (("minimum", ">="), ("maximum", "<="), ("minLength", "length >="),
                      ("maxLength", "length <="), ("pattern", "matching")):
        if key in node:
            bits.append(f"{word} {node[key]}")
    if node.get("description"):
        bits.append(f"({node['description']})")
    return " ".join(bits) or None


def _invalid_text(tool: Tool, problems: Sequence[ValidationProblem]) -> str:
    lines = [f"The arguments for {tool.name} are invalid; nothing was done. Fix these and "
             "call the tool again:"]
    for p in problems:
        expected = _expected(tool.input_schema, p.path)
        field = p.path.removeprefix("$.").removeprefix("$") or "(the arguments object)"
        line = f"- {field}: {p.message}"
        if expected:
            line += f"; expected {expected}"
        lines.append(line)
    return "\n".join(lines)


def _pending_text(tool: Tool, approval_id: str, *, again: bool = False) -> str:
    state = "is still waiting" if again else "needs"
    return (f"{tool.name} {state} a person's approval before it runs; nothing has been done "
            f"yet. Approval request {approval_id} is pending. Tell the user; once they approve "
            f"it (Patchwire dashboard, API, or `patchwire approvals approve {approval_id}`), "
            "call this tool again with exactly the same arguments.")


def _denied_text(tool: Tool, approval: ApprovalRecord) -> str:
    reason = f" Reason: {approval.reason}." if approval.reason else ""
    return (f"A person ({approval.decided_by or 'unknown'}) denied this call of {tool.name}; "
            f"it was not run.{reason} Do not retry it unless the user asks again.")


def _error_text(tool: Tool, exc: PatchwireError) -> str:
    message = exc.message if isinstance(exc, CallError) else str(exc)
    if isinstance(exc, UpstreamValidationError):
        advice = "The service rejected the arguments; correct them and call the tool again."
    elif isinstance(exc, NotFoundError):
        advice = "Nothing matches; check the identifiers (ask the user if unsure)."
    elif isinstance(exc, ConflictError):
        advice = "It conflicts with the current state; look the item up before trying again."
    elif isinstance(exc, RateLimitedError):
        wait = f" after {exc.retry_after:.0f} s" if exc.retry_after is not None else " later"
        advice = f"The service is rate-limiting requests; try again{wait}."
    elif isinstance(exc, CircuitOpenError):
        advice = (f"The service is failing right now; try again after "
                  f"{exc.retry_after:.0f} s or tell the user it is unavailable.")
    elif isinstance(exc, AuthError | ReauthRequired):
        advice = ("The connection's credentials were refused. Changing arguments will not "
                  "help: a person must fix the connection"
                  f"{' ' + repr(tool.connection) if tool.connection else ''}.")
    elif isinstance(exc, CallTimeoutError | TransportError):
        advice = "This may be temporary; you may retry once."
    elif isinstance(exc, LookupFailed):
        advice = "This tool is not usable as configured; tell the user."
    else:
        advice = "Tell the user the action failed."
    return f"{tool.name} failed ({exc.code}): {message}. {advice}"
