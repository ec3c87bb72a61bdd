"""The MCP server: Patchwire's tools for any MCP client, over stdio or Streamable HTTP.

A low-level ``mcp`` SDK ``Server`` whose tool list is read from a :class:`ToolInvoker`'s
catalog on every ``tools/list`` (so ``patchwire tools enable`` and new connections show up
without a restart) and whose ``tools/call`` goes through :meth:`ToolInvoker.invoke`: the same
validation, approval gate, call path, result shaping and audit as every other tool caller.

Errors. Every outcome other than ``ok`` is a ``CallToolResult`` with ``isError`` and the
invoker's model-readable text. Handlers catch every exception themselves: in the handshake
era the SDK would otherwise put the exception's text on the wire, and that text may name
internals (never a stack trace or a secret reaches a client from here).

Confirmation (tools a person must approve) uses MCP elicitation, in both protocol eras the
SDK speaks:

- handshake era (2025-11-25 and before): a standalone ``elicitation/create`` request sent to
  the client while the call waits (the invoker's :data:`ConfirmCallback`);
- 2026-07-28: servers cannot send requests, so the first ``tools/call`` round files a pending
  approval and answers ``InputRequiredResult`` with the question embedded; the client retries
  with the person's answer, which decides that approval, and the invoker then runs (or
  refuses) the call. The approval id travels in ``requestState``, which the SDK's
  :class:`RequestStateBoundary` seals (AES-GCM) and binds to this tool and these arguments,
  so a client cannot swap in another approval or other arguments.

A client without the elicitation capability gets the invoker's pending-approval answer: the
call waits for a person to approve it elsewhere (dashboard, API, CLI).

End users. Over Streamable HTTP one server serves everybody: each request is served for the
end user its token names (the key check's ``Access`` in the request's state), with that end
user's tools (:meth:`ToolInvoker.for_end_user`), never from what the session remembers. A
session belongs to whoever opened it — an end user, an operator's key, or "local" — and the
SDK's session manager answers 404 to anyone else presenting its id; a 2026-07-28 round's
``requestState`` is bound the same way. Over stdio the invoker given is the one used (``patchwire
mcp --end-user`` hands an end user's).
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from patchwire.access import Access
from patchwire.errors import ApprovalStateError, UnknownApproval
from patchwire.ids import new_id
from patchwire.tools._catalog import Tool, ToolCatalog
from patchwire.tools._export import to_mcp
from patchwire.tools._invoke import ConfirmCallback, Decision, ToolInvoker, redact_arguments
from patchwire.tools._search_mode import (
    META_TOOLS,
    SEARCH_TOOLS,
    SearchMode,
    ToolMode,
    check_tool_mode,
    meta_tools,
)
from patchwire.version import __version__

__all__ = [
    "ELICIT_TIMEOUT_S",
    "McpHttpEndpoint",
    "build_server",
    "serve_stdio",
]

log = logging.getLogger("patchwire.mcp")

SERVER_NAME: Final = "patchwire"
#: how long a call waits for a person to answer an elicitation before it files a pending
#: approval instead (the person can still approve it later, elsewhere)
ELICIT_TIMEOUT_S: Final = 600.0
#: the key of the approval question in a 2026-07-28 ``InputRequiredResult``
_APPROVAL_KEY: Final = "patchwire_approval"
#: arguments longer than this are cut in the question shown to the person
_MAX_SHOWN_ARGUMENTS: Final = 2000

_INSTRUCTIONS: Final = (
    "Patchwire's tools act on real systems (shops, helpdesks, calendars, payments) through "
    "stored connections. Tool errors come back as readable text saying what to fix; some "
    "tools need a person's approval before they run."
)

#: the form a person answers to approve a call (a flat object of primitives, as the spec
#: requires for form-mode elicitation)
APPROVAL_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve",
                    "description": "Let this call run", "default": False},
        "reason": {"type": "string", "title": "Reason",
                   "description": "Optional note kept with the decision"},
    },
    "required": ["approve"],
}

def _text(text: str, *, error: bool, data: Any = None) -> types.CallToolResult:
    # structuredContent must be a JSON object in the handshake era; without an outputSchema
    # it is optional, so only objects are sent and the text always carries the result.
    structured = data if isinstance(data, dict) and not error else None
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                structured_content=structured, is_error=error)


def _internal_error(what: str) -> types.CallToolResult:
    ref = new_id()
    log.exception("MCP %s failed unexpectedly (reference %s)", what, ref)
    return _text(f"The tool failed because of an internal error in Patchwire (reference {ref}). "
                 "This is not caused by your arguments; tell the user it is unavailable right "
                 "now.", error=True)


def _modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request speaks 2026-07-28 (no server-to-client requests)."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def _can_elicit(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The client declared form elicitation (a bare ``elicitation: {}`` predates modes and
    means form; url-only does not)."""
    caps = ctx.session.client_capabilities
    elicitation = caps.elicitation if caps is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _client_name(ctx: ServerRequestContext[Any, Any]) -> str:
    params = ctx.session.client_params
    return params.client_info.name if params is not None else "unknown"


def _question(tool: Tool, arguments: Mapping[str, Any]) -> str:
    shown = json.dumps(redact_arguments(dict(arguments)), ensure_ascii=False, sort_keys=True,
                       default=str)
    if len(shown) > _MAX_SHOWN_ARGUMENTS:
        shown = shown[:_MAX_SHOWN_ARGUMENTS] + " …(cut)"
    where = f"connection '{tool.connection}'" if tool.connection else "its default connection"
    return (f"The assistant wants to run {tool.title} ({tool.target}) through {where} with "
            f"these arguments:\n{shown}\n\nApprove this call?")


def _decision(answer: types.ElicitResult, client: str) -> Decision:
    """A person's answer as a Decision. Anything but an explicit ``approve: true`` refuses:
    a call that moves money never runs on an ambiguous answer."""
    by = f"mcp elicitation (client {client!r})"
    content = answer.content or {}
    reason = content.get("reason")
    note = reason.strip()[:500] if isinstance(reason, str) and reason.strip() else None
    if answer.action == "accept":
        if content.get("approve") is True:
            return Decision(True, by, note)
        return Decision(False, by, note or "the person did not approve it")
    if answer.action == "decline":
        return Decision(False, by, note or "the person declined")
    return Decision(False, by, "the person dismissed the request without answering")


def _handshake_confirm(ctx: ServerRequestContext[Any, Any]) -> ConfirmCallback | None:
    """Ask over the connection's back-channel (handshake era), or None when it cannot."""
    if not (_can_elicit(ctx) and ctx.session.can_send_request):
        return None
    client = _client_name(ctx)

    async def confirm(tool: Tool, arguments: Mapping[str, Any]) -> Decision | None:
        try:
            with anyio.fail_after(ELICIT_TIMEOUT_S):
                answer = await ctx.session.elicit_form(_question(tool, arguments),
                                                       APPROVAL_SCHEMA,
                                                       related_request_id=ctx.request_id)
        except Exception as exc:  # the client could not ask: leave the approval pending
            log.warning("elicitation for %s failed (%s); filing a pending approval",
                        tool.name, type(exc).__name__)
            return None
        return _decision(answer, client)

    return confirm


def _session_id(ctx: ServerRequestContext[Any, Any], fallback: str | None) -> str | None:
    """The MCP session id on Streamable HTTP; the connection's own id on stdio. A 2026-07-28
    HTTP request belongs to no session, so it gets None."""
    if isinstance(ctx.request, Request):
        return ctx.request.headers.get("mcp-session-id")
    return fallback


#: catalogs whose MCP form is kept (one per end user active at once, and the operator's)
_KEPT_LISTS: Final = 256
#: tool names whose input schema is kept for the SDK's header check
_KEPT_SCHEMAS: Final = 10_000


def _access(ctx: ServerRequestContext[Any, Any]) -> Access | None:
    """What the key check let through for this request (None on stdio)."""
    request = ctx.request
    if not isinstance(request, Request):
        return None
    found = request.scope.get("state", {}).get("access")
    return found if isinstance(found, Access) else None


def _acting(invoker: ToolInvoker, ctx: ServerRequestContext[Any, Any]) -> ToolInvoker:
    """The invoker for whoever sent this request: their end user's, else ``invoker``."""
    access = _access(ctx)
    if access is not None and access.end_user is not None:
        return invoker.for_end_user(access.end_user)
    return invoker


def _principal(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """Who a 2026-07-28 round's ``requestState`` is bound to (stdio: nobody else can
    reach the process, so no one)."""
    access = _access(ctx)
    return None if access is None else access.identity


class _ToolList:
    """Catalogs as MCP tools, converted once per catalog an invoker builds (an end user's
    catalog object is kept while their tools do not change)."""

    def __init__(self) -> None:
        self._lists: OrderedDict[int, tuple[ToolCatalog, list[types.Tool]]] = OrderedDict()
        self._schemas: OrderedDict[str, Mapping[str, Any]] = OrderedDict()

    def tools(self, catalog: ToolCatalog) -> list[types.Tool]:
        key = id(catalog)
        found = self._lists.get(key)
        if found is not None and found[0] is catalog:  # the entry holds it: ids stay unique
            self._lists.move_to_end(key)
            return found[1]
        tools = [types.Tool.model_validate(to_mcp(t)) for t in catalog]
        self._lists[key] = (catalog, tools)
        while len(self._lists) > _KEPT_LISTS:
            self._lists.popitem(last=False)
        for t in tools:
            self._schemas[t.name] = t.input_schema
            self._schemas.move_to_end(t.name)
        while len(self._schemas) > _KEPT_SCHEMAS:
            self._schemas.popitem(last=False)
        return tools

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        """For the SDK's ``Mcp-Param-*`` header check, which must not await (a tool's
        schema is its action's, whoever's catalog offers it)."""
        return self._schemas.get(name)


#: search mode's two tools, as the SDK's models (the same for everybody)
_META_TOOLS: Final = [types.Tool.model_validate(d) for d in meta_tools("mcp")]
_META_SCHEMAS: Final = {t.name: t.input_schema for t in _META_TOOLS}


def _mode(ctx: ServerRequestContext[Any, Any], default: ToolMode) -> ToolMode:
    """The tool mode of this request: the endpoint URL's ``?mode=`` (Streamable HTTP;
    a client's configuration chooses it), else the server's. MCPError for another
    value."""
    request = ctx.request
    if isinstance(request, Request):
        asked = request.query_params.get("mode")
        if asked is not None:
            try:
                return check_tool_mode(asked)
            except ValueError:
                raise MCPError(types.INVALID_PARAMS, "the MCP endpoint's mode parameter must "
                               "be all or search") from None
    return default


def build_server(invoker: ToolInvoker, *, session_id: str | None = None,
                 mode: ToolMode = "all") -> Server[Any]:
    """The MCP server over ``invoker``. ``session_id`` names the connection in the audit
    where the transport has no session of its own (stdio; default: a new id). ``mode``:
    every tool in ``tools/list``, or search mode's two meta-tools (``search_tools``,
    ``call_tool``); over HTTP a request's ``?mode=`` wins."""
    fallback_session = session_id or f"mcp-{new_id()}"
    listing = _ToolList()
    searching = SearchMode("mcp")

    def input_schema(name: str) -> Mapping[str, Any] | None:
        return listing.input_schema(name) or _META_SCHEMAS.get(name)

    async def list_tools(ctx: ServerRequestContext[Any, Any],
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        if _mode(ctx, mode) == "search":
            return types.ListToolsResult(tools=_META_TOOLS)
        try:
            catalog = await _acting(invoker, ctx).catalog()
            return types.ListToolsResult(tools=listing.tools(catalog))
        except Exception:
            ref = new_id()
            log.exception("MCP tools/list failed (reference %s)", ref)
            # Not a tool result, so a protocol error; its text is ours, never the exception's.
            raise MCPError(types.INTERNAL_ERROR,
                           f"Patchwire could not list its tools (reference {ref})") from None

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams,
    ) -> types.CallToolResult | types.InputRequiredResult:
        name, arguments = params.name, params.arguments
        if _mode(ctx, mode) == "search" and name in META_TOOLS:
            if name == SEARCH_TOOLS:
                try:
                    found = await searching.search(_acting(invoker, ctx), arguments)
                except Exception:
                    return _internal_error("search_tools")
                return _text(found.text, error=found.is_error, data=found.data)
            # call_tool: the tool it names, through the same path as a direct call
            target, unwrapped, problem = SearchMode.unwrap(arguments)
            if problem is not None or target is None:
                return _text(problem or "call_tool needs a tool name", error=True)
            name, arguments = target, dict(unwrapped or {})
        try:
            sid = _session_id(ctx, fallback_session)
            acting = _acting(invoker, ctx)
            if _modern(ctx):
                return await _call_modern(acting, ctx, params, name, arguments, sid)
            result = await acting.invoke(name, arguments, session_id=sid,
                                         confirm=_handshake_confirm(ctx))
            return _text(result.text, error=result.is_error, data=result.data)
        except Exception:
            return _internal_error(f"tools/call {name[:100]!r}")

    server: Server[Any] = Server(
        SERVER_NAME, version=__version__, title="Patchwire", instructions=_INSTRUCTIONS,
        on_list_tools=list_tools, on_call_tool=call_tool,
        get_tool_input_schema=input_schema,
    )
    # Seals requestState (the pending approval's id) for the 2026-07-28 round trip, bound
    # to who asked (another end user cannot replay it). The key lives in this process
    # only: a round must come back to the server that started it, which holds for stdio
    # and for `patchwire serve` (one process).
    security = RequestStateSecurity(keys=[os.urandom(32)], bind_principal=_principal)
    server.middleware.append(RequestStateBoundary(security, default_audience=SERVER_NAME))
    return server


async def _call_modern(
    invoker: ToolInvoker, ctx: ServerRequestContext[Any, Any],
    params: types.CallToolRequestParams, name: str, arguments: dict[str, Any] | None,
    session_id: str | None,
) -> types.CallToolResult | types.InputRequiredResult:
    """One round of a 2026-07-28 ``tools/call`` (see the module docstring) of tool
    ``name`` with ``arguments`` (the request's own, or those a ``call_tool`` carries)."""
    can_elicit = _can_elicit(ctx)
    if params.request_state is not None:
        # The retry: the boundary has verified the state is ours and bound to this very
        # tool and arguments. Record the person's answer on the approval it names.
        await _apply_answer(invoker, params, _client_name(ctx))
    result = await invoker.invoke(name, arguments, session_id=session_id, confirm=None)
    if (result.status == "pending_approval" and result.approval_id is not None and can_elicit
            and params.request_state is None):
        tool = (await invoker.catalog()).find(name)
        if tool is not None:
            question = types.ElicitRequest(params=types.ElicitRequestFormParams(
                message=_question(tool, arguments or {}),
                requested_schema=APPROVAL_SCHEMA))
            return types.InputRequiredResult(
                input_requests={_APPROVAL_KEY: question},
                request_state=json.dumps({"approval": result.approval_id}))
    return _text(result.text, error=result.is_error, data=result.data)


async def _apply_answer(invoker: ToolInvoker, params: types.CallToolRequestParams,
                        client: str) -> None:
    try:
        approval_id = json.loads(params.request_state or "")["approval"]
    except (ValueError, KeyError, TypeError):
        return  # not a state this server minted in this shape; the invoker decides as usual
    answer = (params.input_responses or {}).get(_APPROVAL_KEY)
    if not isinstance(answer, types.ElicitResult) or not isinstance(approval_id, str):
        return  # no answer: the approval stays pending and the model is told so
    decision = _decision(answer, client)
    try:
        # an end user's invoker decides their own approvals only
        await invoker.decide_approval(approval_id, approved=decision.approved,
                                      decided_by=decision.decided_by, reason=decision.reason)
    except (ApprovalStateError, UnknownApproval):
        # Someone decided it meanwhile (dashboard, API), or it expired: what stands wins,
        # and the invoker reports it.
        log.info("approval %s was no longer pending when the MCP answer came", approval_id)


# -- transports ---------------------------------------------------------------------------

def _settings_mode(invoker: ToolInvoker) -> ToolMode:
    """The deployment's ``tool_mode`` (patchwire.toml, ``PATCHWIRE_TOOL_MODE``)."""
    try:
        return check_tool_mode(getattr(invoker.host.settings, "tool_mode", "all"))
    except ValueError:
        return "all"  # load_settings refuses another value; a hand-built Settings may not


async def serve_stdio(invoker: ToolInvoker, *, mode: ToolMode | None = None) -> None:
    """Serve one MCP client over this process's stdin and stdout until it disconnects;
    ``mode`` (default: the settings' ``tool_mode``) offers every tool or search mode's
    meta-tools."""
    server = build_server(invoker, session_id=f"mcp-stdio-{new_id()}",
                          mode=mode or _settings_mode(invoker))
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


class McpHttpEndpoint:
    """The ASGI endpoint for ``/mcp`` (Streamable HTTP, both protocol eras).

    ``Host`` and ``Origin`` (DNS rebinding, other sites' pages, other local ports) are
    checked in front of it, as for every route of the app, by the server's ``SiteGuard``.
    ``run()`` must be entered (the app's lifespan) before requests are served.
    """

    def __init__(self, invoker: ToolInvoker, *, json_response: bool = False,
                 mode: ToolMode | None = None) -> None:
        # json_response=True answers each POST with one JSON body: faster, but it removes the
        # back-channel handshake-era elicitation needs, so confirm tools would only ever be
        # left pending. Hence SSE by default.
        # mode: the default for requests without ?mode= (None: the settings' tool_mode)
        self.server = build_server(invoker, mode=mode or _settings_mode(invoker))
        self._json_response = json_response
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Serve sessions until exit (a manager runs once, so each run gets its own, and an
        app can go through its lifespan more than once, as tests do)."""
        # The SDK's Host/Origin check is off: the app's SiteGuard makes it, with the names
        # the whole server answers to (the SDK still checks the content type).
        manager = StreamableHTTPSessionManager(
            app=self.server, json_response=self._json_response,
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self._manager
        if manager is None:  # outside the app's lifespan (starting up or shutting down)
            await Response("MCP endpoint not running", status_code=503)(scope, receive, send)
            return
        access = scope.get("state", {}).get("access")
        identity = access.identity if isinstance(access, Access) else "local"
        # The session manager binds a session to the user that opened it and answers 404
        # to anyone else presenting its id: the user is who the key check let through.
        scope["user"] = AuthenticatedUser(AccessToken(token="-", client_id=identity,
                                                      scopes=[]))
        await manager.handle_request(scope, receive, send)
