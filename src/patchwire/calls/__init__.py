"""The call path: the only way anything reaches an upstream.

One entry point, :meth:`CallPath.execute`, taking one request object, :class:`CallRequest`
(action, arguments, connection, request and run ids, idempotency key, page cursor). The
facade, tools, flows, syncs, the REST API and the CLI all call through it::

    pw.call / pw.paginate (facade) ─┐
    ToolInvoker.invoke (tools)  ────┤  CallRequest (or ValidatedCall)
    flow step call (flows)      ────┼─▶ CallPath.execute ─▶ connection (_connection.py)
    sync poll (sync)            ────┤     ─▶ validate once (_validation.py)
    `patchwire call` (cli)      ────┘     ─▶ render (_action.py) ─▶ page/idempotency key
                                           ─▶ HttpCore.send (http) ─▶ map or typed error
                                           ─▶ call record (call log) ─▶ CallOutcome

A tool call is: ToolInvoker → ``CallPath.validate`` (before the approval gate) → gate →
``CallPath.execute(validated)``: arguments are validated once and the tool reaches the call
path directly, never back through the facade. Pagination (``_pagination.py``) is one
``execute`` per page, each request carrying its :class:`PageCursor`; nothing adjusts a
rendered request from outside.

Everything that can be computed before a call is computed once: each action is compiled
(validator, templates, expressions) on first use, each connection resolved (settings
merged, secrets decrypted, auth rendered, redactor built) and cached briefly, so the per
call work is rendering a few templates and one HTTP exchange.
"""

from patchwire.calls._action import CompiledAction
from patchwire.calls._connection import (
    CONNECTION_TTL,
    TOKEN_SKEW,
    AccessTokens,
    ConnectionResolver,
    ConnectionRows,
    ResolvedConnection,
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
    "CompiledAction",
    "ConnectionResolver",
    "ConnectionRows",
    "PageCursor",
    "PaginationError",
    "ResolvedConnection",
    "ValidatedCall",
    "effective_pagination",
]
