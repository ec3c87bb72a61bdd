"""The tool call path: what happens between a model asking for a tool and its answer.

    look up the tool → normalise (strict-mode nulls and encodings) → validate the arguments, once
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
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
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
    NotConnected,
    NotFoundError,
    PatchwireError,
    RateLimitedError,
    ReauthRequired,
    TransportError,
    UnknownApproval,
    UnknownConnection,
    UpstreamValidationError,
    ValidationProblem,
)
from patchwire.expressions import Expression, compile_expression
from patchwire.ids import new_id
from patchwire.observability import TOOL_CALLS
from patchwire.ports import (
    ConnectionDirectory,
    ConnectLinks,
    HasCalls,
    HasConnectors,
    HasSettings,
    HasStore,
)
from patchwire.store.end_users import check_end_user
from patchwire.store.records import utcnow
from patchwire.store.tools import ApprovalRecord, ToolCallRecord, ToolRepository
from patchwire.tools._catalog import (
    EndUserConnection,
    Tool,
    ToolCatalog,
    ToolFilter,
    default_connection,
    end_user_catalog,
)
from patchwire.tools._quota import EndUserQuota
from patchwire.tools._result import ToolResult, ToolStatus
from patchwire.tools._shaping import shape_result
from patchwire.tools._strict_arguments import strict_arguments

if TYPE_CHECKING:
    from patchwire.flows import Engine
    from patchwire.flows.spec import FlowSpec
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

#: end users whose invokers (and catalogs) an invoker keeps at once, most recent first
MAX_END_USERS = 1000


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


def _fingerprint(tool: Tool, arguments: Mapping[str, Any], end_user: str | None = None
                 ) -> str:
    # an operator's approvals keep the fingerprint they had before there were end users
    bound: list[Any] = [tool.target, tool.connection, arguments]
    if end_user is not None:
        bound.append({"end_user": end_user})
    blob = orjson.dumps(bound, option=orjson.OPT_SORT_KEYS, default=str)
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


@dataclass(slots=True)
class _Definitions:
    """What every catalog is built from, read at most once per TTL and shared by the
    operator's catalog and every end user's: stored tool settings, the engine's flows,
    and the unbound catalog (every tool of every connector) end users' catalogs lie over."""

    overrides: dict[str, ToolSpec]
    flows: list[FlowSpec]
    base: ToolCatalog
    built_at: float


class _Shared:
    """What an invoker and the invokers it scopes to end users share."""

    def __init__(self, host: ToolHost, *, filter: ToolFilter | None, approval_ttl: timedelta,
                 catalog_ttl: float, clock: Callable[[], float], engine: Engine | None,
                 flow_wait: float, syncs: Iterable[SyncSpec] | None,
                 links: ConnectLinks | None, quota: EndUserQuota | None,
                 max_end_users: int) -> None:
        self.host = host
        self.filter = filter
        self.approval_ttl = approval_ttl
        self.catalog_ttl = catalog_ttl
        self.clock = clock
        self.engine = engine
        self.flow_wait = flow_wait
        # --- records tools (src/patchwire/tools/_records_tool.py): syncs with `tool:`;
        # None: the user's syncs (settings.sync_paths), loaded with the first catalog ---
        self.syncs: dict[str, SyncSpec] | None = (
            None if syncs is None else {s.id: s for s in syncs})
        # --- end records tools ---
        self.links = links
        self._quota = quota
        self._quota_read = quota is not None
        self.max_end_users = max_end_users
        self.projections: dict[str, Expression] = {}
        self.definitions: _Definitions | None = None

    def quota(self) -> EndUserQuota | None:
        """The per-end-user tool-call quota the settings ask for (read once)."""
        if not self._quota_read:
            limits = self.host.settings.end_user_tool_call_limits
            self._quota = (EndUserQuota(lambda: self.host.store, limits) if limits else None)
            self._quota_read = True
        return self._quota

    def load_syncs(self) -> dict[str, SyncSpec]:
        if self.syncs is None:
            from patchwire.tools._records_tool import load_syncs

            self.syncs = load_syncs(self.host.settings)
        return self.syncs

    async def read_definitions(self, *, refresh: bool = False) -> _Definitions:
        now = self.clock()
        found = self.definitions
        if not refresh and found is not None and now - found.built_at < self.catalog_ttl:
            return found
        stored = await ToolRepository(self.host.store).tool_settings()
        overrides = {target: ToolSpec.model_validate(s) for target, s in stored.items()}
        flows = list(self.engine.flows()) if self.engine is not None else []
        base = ToolCatalog.build(self.host.connectors, overrides=overrides,
                                 filter=self.filter, flows=flows)
        self.definitions = _Definitions(overrides, flows, base, now)
        return self.definitions


class ToolInvoker:
    """Calls tools of a catalog built over ``host``'s connectors and connections.

    ``connections`` scopes the catalog to those connections; None offers every
    connection of the operator's (those of no end user). The catalog is rebuilt when it
    is older than ``catalog_ttl`` seconds, so ``patchwire tools enable`` and new
    connections show up in running servers.

    End users: :meth:`for_end_user` gives the invoker that acts for one end user — their
    catalog (see ``end_user_catalog``), calls through their connections only, their tool
    audit and approvals. A tool of a connector they have not connected (or must connect
    again) answers ``connection_required`` with a link from ``links`` (the deployment's
    connect sessions). ``settings.end_user_tool_calls`` caps their tool calls across
    processes (``rate_limited``); ``quota`` replaces what the settings say.
    """

    def __init__(
        self, host: ToolHost, *, connections: Sequence[str] | None = None,
        filter: ToolFilter | None = None,
        approval_ttl: timedelta = timedelta(hours=24), catalog_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic, engine: Engine | None = None,
        flow_wait: float = 30.0, syncs: Iterable[SyncSpec] | None = None,
        links: ConnectLinks | None = None, quota: EndUserQuota | None = None,
        max_end_users: int = MAX_END_USERS,
    ) -> None:
        shared = _Shared(host, filter=filter, approval_ttl=approval_ttl,
                         catalog_ttl=catalog_ttl, clock=clock, engine=engine,
                         flow_wait=flow_wait, syncs=syncs, links=links, quota=quota,
                         max_end_users=max_end_users)
        self._setup(shared, list(connections) if connections is not None else None, None)

    def _setup(self, shared: _Shared, connections: list[str] | None,
               end_user: str | None) -> None:
        self._s = shared
        self._host = shared.host
        self._connections = connections
        self._end_user = end_user
        self._catalog: ToolCatalog | None = None
        self._built_at = 0.0
        #: the invokers of the end users that acted most recently (an operator's only)
        self._scoped: OrderedDict[str, ToolInvoker] = OrderedDict()
        # --- an end user's: what their catalog was built from ---
        #: the definitions and connections (name, connector, label, default, reauth)
        self._built_from: tuple[_Definitions, tuple[tuple[Any, ...], ...]] | None = None
        #: connectors they hold a connection of; their connections needing re-authorising
        self._connected: frozenset[str] = frozenset()
        self._reauth: frozenset[str] = frozenset()
        #: label-prefixed tool name -> its plain name (for metrics)
        self._plain: dict[str, str] = {}

    @property
    def end_user(self) -> str | None:
        """The end user this invoker acts for (None: an operator's)."""
        return self._end_user

    def for_end_user(self, end_user: str) -> ToolInvoker:
        """The invoker acting for ``end_user`` (kept for the most recently active ones, so
        their catalogs are not rebuilt on every call). ValueError for an invalid id."""
        if self._end_user is not None:
            if end_user == self._end_user:
                return self
            raise ValueError("this tool invoker already acts for another end user")
        scoped = self._scoped.get(end_user)
        if scoped is not None:
            self._scoped.move_to_end(end_user)
            return scoped
        check_end_user(end_user)
        scoped = ToolInvoker.__new__(ToolInvoker)
        scoped._setup(self._s, None, end_user)
        self._scoped[end_user] = scoped
        while len(self._scoped) > self._s.max_end_users:
            self._scoped.popitem(last=False)
        return scoped

    @property
    def host(self) -> ToolHost:
        """What this invoker calls through: its connectors and settings (search mode reads
        the connectors' titles and synonyms, and the deployment's ``tool_mode``)."""
        return self._host

    @property
    def engine(self) -> Engine | None:
        """The flow engine that runs flow tools (None: no flow tools)."""
        return self._s.engine

    @property
    def repository(self) -> ToolRepository:
        return ToolRepository(self._host.store)

    async def tool_calls(self, *, session_id: str | None = None, tool: str | None = None,
                         validation_failed: bool | None = None,
                         limit: int = 100) -> list[ToolCallRecord]:
        """The tool audit, newest first, including calls not yet written to the store
        (an end user's: theirs only)."""
        await self._host.flush()
        return await self.repository.list_tool_calls(
            session_id=session_id, tool=tool, validation_failed=validation_failed, limit=limit,
            end_user=self._end_user)

    # -- approvals, as this invoker's caller may see them ------------------------------------

    async def approvals(self, *, status: str | None = None,
                        limit: int = 100) -> list[ApprovalRecord]:
        """Approvals, newest first (an end user's: those their calls asked for)."""
        return await self.repository.list_approvals(status=status, limit=limit,
                                                    end_user=self._end_user)

    async def approval(self, approval_id: str) -> ApprovalRecord:
        """One approval; UnknownApproval when there is none — or, for an end user, when
        it is another's (it does not exist for them)."""
        found = await self.repository.get_approval(approval_id)
        if self._end_user is not None and found.end_user != self._end_user:
            raise UnknownApproval(f"no approval {approval_id!r}")
        return found

    async def decide_approval(self, approval_id: str, *, approved: bool, decided_by: str,
                              reason: str | None = None) -> ApprovalRecord:
        """Approve or deny a pending approval this invoker's caller may see."""
        await self.approval(approval_id)
        return await self.repository.decide_approval(approval_id, approved=approved,
                                                     decided_by=decided_by[:200],
                                                     reason=reason)

    def use_syncs(self, syncs: Iterable[SyncSpec]) -> None:
        """Reloaded definitions: the next catalog offers the records tools of ``syncs``
        and reads the connectors and the engine's flows again (not after the TTL)."""
        self._s.syncs = {s.id: s for s in syncs}
        self._s.definitions = None
        self._catalog = None
        for scoped in self._scoped.values():
            scoped._catalog = None

    # -- catalogs -------------------------------------------------------------------------

    async def catalog(self, *, refresh: bool = False) -> ToolCatalog:
        """The current tools. An end user's ``refresh`` reads their connections again
        (one indexed query); the tool definitions are read again after the TTL."""
        if self._end_user is not None:
            return await self._end_user_catalog(refresh)
        now = self._s.clock()
        if (not refresh and self._catalog is not None
                and now - self._built_at < self._s.catalog_ttl):
            return self._catalog
        definitions = await self._s.read_definitions(refresh=refresh)
        if self._connections is not None:
            known = await self._host.store.list_connections()
            names = {c.name for c in known}
            missing = [n for n in self._connections if n not in names]
            if missing:
                raise UnknownConnection(
                    f"no connection named {', '.join(map(repr, missing))} "
                    f"(known: {', '.join(sorted(names)) or 'none'})")
            wanted = set(self._connections)
            known = [c for c in known if c.name in wanted]
        else:
            # End users' connections are theirs: an operator's catalog offers its own only
            # (with thousands of end users, one tool per connection would be useless).
            known = [c for c in await self._host.store.list_connections()
                     if c.end_user is None]
        pairs = [(c.name, c.connector) for c in known]
        catalog = ToolCatalog.build(
            self._host.connectors, overrides=definitions.overrides, connections=pairs,
            filter=self._s.filter, flows=definitions.flows)
        # --- records tools: a search over each sync's records, bound to connections ---
        from patchwire.tools._records_tool import with_records_tools

        catalog = with_records_tools(catalog, self._s.load_syncs().values(), pairs,
                                     self._s.filter)
        # --- end records tools ---
        self._catalog, self._built_at = catalog, now
        return catalog

    async def _end_user_catalog(self, refresh: bool) -> ToolCatalog:
        assert self._end_user is not None
        now = self._s.clock()
        definitions = await self._s.read_definitions()
        if (not refresh and self._catalog is not None and self._built_from is not None
                and self._built_from[0] is definitions
                and now - self._built_at < self._s.catalog_ttl):
            return self._catalog
        # one indexed query (connections by end user): never a scan of everyone's
        held = await self._host.store.list_connections(end_user=self._end_user)
        shape = tuple((c.name, c.connector, c.label, c.is_default, c.needs_reauth)
                      for c in held)
        if (self._catalog is None or self._built_from is None
                or self._built_from[0] is not definitions or self._built_from[1] != shape):
            catalog, plain = end_user_catalog(definitions.base, held)
            # --- records tools: over their own connections, named as their actions ---
            from patchwire.tools._records_tool import with_records_tools

            prefixes: dict[str, str | None] = {}
            by_connector: dict[str, list[EndUserConnection]] = {}
            for conn in held:
                by_connector.setdefault(conn.connector, []).append(conn)
            for group in by_connector.values():
                default = default_connection(group)
                for each in group:
                    prefixes[each.name] = None if each is default else (each.label
                                                                        or each.name)
            catalog = with_records_tools(catalog, self._s.load_syncs().values(),
                                         [(c.name, c.connector) for c in held],
                                         self._s.filter, prefixes)
            # --- end records tools ---
            self._catalog, self._plain = catalog, plain
            self._connected = frozenset(c.connector for c in held)
            self._reauth = frozenset(c.name for c in held if c.needs_reauth)
        # else the same catalog object: what was made of it (MCP's tool list) still holds
        self._built_from = (definitions, shape)
        self._built_at = now
        assert self._catalog is not None
        return self._catalog

    # -- calls ----------------------------------------------------------------------------

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
            wait = await self._over_quota()
            if wait is not None:
                result = _rate_limited(wait)
                audit.error = f"over the end user's tool-call quota; retry in {wait:.1f} s"
            else:
                catalog = await self.catalog()
                tool = catalog.find(name)
                if tool is None:
                    if self._end_user is not None:  # a tool enabled meanwhile?
                        await self._s.read_definitions(refresh=True)
                    catalog = await self.catalog(refresh=True)
                    tool = catalog.find(name)
                if tool is None:
                    result = _unknown_tool(name, catalog)
                else:
                    result = await self._invoke(tool, arguments, session_id, confirm,
                                                request_id, audit)
                    tool = audit.tool or tool
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
            arguments=redact_arguments(audit.arguments if audit.arguments is not None
                                       else arguments)
            if isinstance(arguments, Mapping) else None,
            validation_failed=result.status == "invalid_arguments", status=result.status,
            error=None if result.status == "ok" else (audit.error or result.text)[:2000],
            latency_ms=latency_ms, approval_id=result.approval_id or audit.approval_id,
            request_id=request_id, started_at=started_at, end_user=self._end_user)
        self._host.audit_tool_call(record)
        # observability: tool calls by outcome; a model's unknown tool names stay one label,
        # and so do an end user's labels (their own words) on their tools' names
        label = self._plain.get(tool.name, tool.name) if tool else "unknown"
        TOOL_CALLS.labels(label, result.status).inc()
        return result

    async def _over_quota(self) -> float | None:
        """Seconds until this end user may call a tool again; None when they may now."""
        if self._end_user is None:
            return None
        quota = self._s.quota()
        return None if quota is None else await quota.admit(self._end_user)

    async def _invoke(self, tool: Tool, arguments: Mapping[str, Any] | None,
                      session_id: str | None, confirm: ConfirmCallback | None,
                      request_id: str, audit: _Audit) -> ToolResult:
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            return ToolResult("invalid_arguments",
                              f"The arguments of {tool.name} must be a JSON object, not "
                              f"{type(arguments).__name__}. Call it again with an object.")
        try:  # strict-mode nulls dropped and its encodings decoded (JSON strings, pairs)
            args = strict_arguments(tool.input_schema, dict(arguments))
        except InputValidationError as exc:
            return ToolResult("invalid_arguments", _invalid_text(tool, exc.problems))
        audit.arguments = args
        if tool.kind == "records":  # records tools: answered from the store, no upstream
            from patchwire.tools._records_tool import invoke_records_tool

            return await invoke_records_tool(self._host.store, tool, args,
                                             self._s.syncs or {})
        if tool.kind == "flow":
            return await self._run_flow(tool, args, session_id, confirm, audit)
        if self._end_user is not None:
            tool, missing = await self._account_for(tool)
            audit.tool = tool
            if missing is not None:
                return await self._connection_required(tool, missing, audit)
        # Straight to the call path: validated here, before the approval gate (nothing is
        # filed for arguments that cannot run), and not again when it is sent. The
        # connection comes from the tool (and, for an end user, must be theirs), never
        # from the arguments.
        calls = self._host.calls
        try:
            call = calls.validate(CallRequest(tool.target, args, tool.connection, request_id,
                                              end_user=self._end_user))
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
        except NotConnected:  # disconnected since the catalog was read
            self._catalog = None
            return await self._connection_required(tool, "not_connected", audit)
        except ReauthRequired as exc:
            if self._end_user is None or tool.connection is None:
                audit.error = str(exc)
                return ToolResult("error", _error_text(tool, exc), approval_id=approval_id)
            self._catalog = None
            return await self._connection_required(tool, "needs_reauth", audit)
        except UnknownConnection as exc:
            if self._end_user is not None and tool.connection is not None:
                # their connection was removed or changed since the catalog was read
                self._catalog = None
                audit.error = str(exc)
                return ToolResult("error", f"The user's connection changed while "
                                  f"{tool.name} was being called; nothing was done. Call it "
                                  "again.", approval_id=approval_id)
            audit.error = str(exc)
            return ToolResult("error", _error_text(tool, exc), approval_id=approval_id)
        except PatchwireError as exc:
            audit.error = str(exc)
            return ToolResult("error", _error_text(tool, exc), approval_id=approval_id)
        shaped = shape_result(outcome.result, projection=self._projection(tool),
                              max_bytes=tool.max_result_bytes)
        return ToolResult("ok", shaped.text, shaped.data, approval_id=approval_id,
                          truncated=shaped.truncated)

    async def _account_for(self, tool: Tool) -> tuple[Tool, str | None]:
        """``tool`` as the end user's connections bind it now, and why it cannot run
        (``not_connected``, ``needs_reauth``) or None. A "cannot" read from the cached
        catalog is checked again first (one indexed query): an end user who has just
        connected must not be told to connect again."""
        def missing(t: Tool) -> str | None:
            if t.connection is None:
                return None if t.connector in self._connected else "not_connected"
            return "needs_reauth" if t.connection in self._reauth else None

        if missing(tool) is None:
            return tool, None
        fresh = (await self.catalog(refresh=True)).find(tool.name)
        if fresh is None:  # its label changed: the plain tool says what to do
            return tool, "not_connected"
        return fresh, missing(fresh)

    async def _connection_required(self, tool: Tool, reason: str,
                                   audit: _Audit) -> ToolResult:
        """What the model reads when the end user must connect (or reconnect) the tool's
        account: the words to give them, with a fresh connect link when links are wired."""
        assert self._end_user is not None
        connector = tool.connector
        title = self._title(connector)
        again = reason == "needs_reauth"
        what = (f"the user's {title} connection must be authorised again" if again
                else f"the user has not connected a {title} account")
        # the link is the end user's own capability: it is for them, not for the audit
        audit.error = f"{'reconnect' if again else 'connection'} required: {what}"
        data: dict[str, Any] = {"connector": connector, "reason": reason,
                                "connect_url": None, "expires_at": None}
        if again:
            data["connection"] = tool.connection
        link = None
        if self._s.links is not None:
            try:
                link = await self._s.links.link(self._end_user, [connector],
                                                connection=tool.connection if again else None)
            except PatchwireError as exc:
                log.warning("no connect link for a %s tool call: %s", connector, exc)
        if link is None:
            why = ("this deployment cannot hand out connect links" if self._s.links is None
                   else "no connect link could be made right now")
            return ToolResult("connection_required", (
                f"{tool.name} was not run: {what}, and {why}. Tell the user their {title} "
                f"account {'needs reconnecting' if again else 'is not connected'} and that "
                "they should ask the operator of this service to connect it."), data)
        expires = link.expires_at.isoformat(timespec="seconds")
        data.update(connect_url=link.url, expires_at=expires)
        say = (f"To do this I need access to your {title} account again. Open this link to "
               f"reconnect it: {link.url}" if again else
               f"To do this I need access to your {title} account. Open this link to connect "
               f"it: {link.url}")
        return ToolResult("connection_required", (
            f"{tool.name} was not run: {what}. Give the user these words: \"{say}\" (the "
            f"link works once, until {expires}). Once they say they have connected, call "
            f"{tool.name} again with the same arguments."), data)

    def _title(self, connector: str) -> str:
        try:
            spec = self._host.connectors.get(connector)
        except PatchwireError:
            return connector
        return spec.title or connector.replace("_", " ").capitalize()

    async def _run_flow(self, tool: Tool, args: dict[str, Any], session_id: str | None,
                        confirm: ConfirmCallback | None, audit: _Audit) -> ToolResult:
        """A flow tool starts a run and waits (bounded) for its output."""
        engine = self._s.engine
        if engine is None:
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
            # an end user's run acts for them: its calls go through their connections only
            run_id = await engine.start_run(flow_id, args, trigger="tool",
                                            end_user=self._end_user)
        except FlowInputError as exc:
            return ToolResult("invalid_arguments", _invalid_text(tool, exc.problems))
        except PatchwireError as exc:
            return ToolResult("error", f"{tool.name} could not start: {exc}",
                              approval_id=approval_id)
        try:
            run = await engine.wait(run_id, max_wait=self._s.flow_wait)
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
        if error.get("code") == "not_connected" and self._end_user is not None:
            # a step needs an account the end user has not connected: the same link as
            # that connector's own tools give
            connector = _step_connector(engine, flow_id, error.get("step"))
            if connector is not None:
                return await self._connection_required(
                    replace(tool, connector=connector, connection=None), "not_connected",
                    audit)
        audit.error = str(error)
        return ToolResult("error", f"{tool.name} failed at step {error.get('step')} "
                          f"({error.get('code')}): {error.get('message')}. Tell the user.",
                          approval_id=approval_id)

    def _projection(self, tool: Tool) -> Expression | None:
        if tool.result is None:
            return None
        projections = self._s.projections
        expr = projections.get(tool.result)
        if expr is None:
            expr = projections[tool.result] = compile_expression(tool.result)
        return expr

    # -- approval gate ----------------------------------------------------------------------

    async def _gate(self, tool: Tool, args: Mapping[str, Any], session_id: str | None,
                    confirm: ConfirmCallback | None) -> ToolResult | str:
        """The id of the approval that lets this call run, or the result to give instead.

        An approval is bound to the exact call (tool, connection, arguments, end user):
        approving a refund of 5 € does not let a refund of 500 € through, one yes runs one
        call, and one end user's yes never lets another's call through.
        """
        repo = self.repository
        fingerprint = _fingerprint(tool, args, self._end_user)
        now = utcnow()
        for prior in await repo.approvals_for(fingerprint):
            if prior.end_user != self._end_user:
                continue
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
            requested_at=now,
            expires_at=now + self._s.approval_ttl if decision is None else None,
            decided_at=None if decision is None else now,
            decided_by=None if decision is None else decision.decided_by[:200],
            reason=None if decision is None else decision.reason,
            used_at=now if decision is not None else None, end_user=self._end_user)
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
    #: the arguments as the action got them (strict-mode encodings decoded)
    arguments: dict[str, Any] | None = None
    approval_id: str | None = None
    #: the tool as it ran, when an end user's connections bound it anew
    tool: Tool | None = None


def _step_connector(engine: Engine, flow_id: str, step_id: Any) -> str | None:
    """The connector of call step ``step_id`` of flow ``flow_id`` (in any branch)."""
    flow = next((f for f in engine.flows() if f.id == flow_id), None)
    pending: list[Any] = list(flow.steps) if flow is not None else []
    while pending:
        step = pending.pop()
        call = getattr(step, "call", None)
        if getattr(step, "id", None) == step_id and isinstance(call, str):
            return call.split(".", 1)[0]
        for nested in ("then", "else_", "default", "do"):
            pending.extend(getattr(step, nested, None) or ())
        for branches in ("cases", "parallel"):
            for steps in (getattr(step, branches, None) or {}).values():
                pending.extend(steps)
    return None


def _rate_limited(wait: float) -> ToolResult:
    seconds = max(1, math.ceil(wait))
    return ToolResult("rate_limited", (
        f"Nothing was done: this user has made too many tool calls for now. Try again in "
        f"{seconds} s; if the user is waiting, tell them so."), {"retry_after": seconds})


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
