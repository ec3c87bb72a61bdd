"""The call path: the only way anything reaches an upstream.

One entry point, :meth:`CallPath.execute`, taking one request object, :class:`CallRequest`
(action, arguments, connection, request and run ids, idempotency key, page cursor)::

    pw.call / pw.execute / pw.paginate (facade, REST API) ─┐
    ToolInvoker.invoke (tools: MCP, chat, REST)  ──────────┤ CallRequest
    call_step (flows, both engines)              ──────────┼─▶ CallPath.execute   _path.py
    SyncEngine polls (sync)                      ──────────┤   action compiled    _action.py
    `patchwire call` (cli)                       ──────────┘   connection         _connection.py
                                                               validate once      _validation.py
                                                               render, page,      _action.py,
                                                               idempotency key    _request.py
                                                               HttpCore.send      (http)
                                                               map / typed error  _action.py
                                                               call record        (call log)
                                                           ◀── CallOutcome

A tool call, hop by hop: ``ToolInvoker.invoke`` → ``CallPath.validate`` (before the
approval gate) → gate → ``CallPath.execute(validated)`` → connection → render →
``HttpCore.send`` → map → call record → back to the invoker to shape and audit. The tool
reaches the call path directly (never back through the facade) and its arguments are
validated once. A listing (``_pagination.py``) is one ``execute`` per page, each request
carrying its :class:`PageCursor`; the first page's call validates, later pages are sent
as a :class:`ValidatedCall`. Nothing changes a rendered request from outside: no
callbacks, no out-parameters.

Everything that can be computed before a call is computed once: each action is compiled
(validator, templates, expressions) on first use, each connection resolved (settings
merged, secrets decrypted, auth rendered, redactor built) and cached briefly, so the per
call work is rendering a few templates and one HTTP exchange.
"""

from patchwire.calls._action import CompiledAction
from patchwire.calls._code import (
    CodeLoader,
    CodeResponse,
    ConnectionClient,
    code_definition_problems,
)
from patchwire.calls._connection import (
    CONNECTION_TTL,
    TOKEN_SKEW,
    AccessTokens,
    ConnectionResolver,
    ConnectionRows,
    ResolvedConnection,
    check_end_user,
)
from patchwire.calls._pagination import DEFAULT_MAX_PAGES, effective_pagination
from patchwire.calls._path import CallPath
from patchwire.calls._request import CallOutcome, CallRequest, PageCursor, ValidatedCall
from patchwire.errors import PaginationError

__all__ = [
    "CONNECTION_TTL",
    "DEFAULT_MAX_PAGES",
    "TOKEN_SKEW",
    "AccessTokens",
    "CallOutcome",
    "CallPath",
    "CallRequest",
    "CodeLoader",
    "CodeResponse",
    "CompiledAction",
    "ConnectionClient",
    "ConnectionResolver",
    "ConnectionRows",
    "PageCursor",
    "PaginationError",
    "ResolvedConnection",
    "ValidatedCall",
    "check_end_user",
    "code_definition_problems",
    "effective_pagination",
]
