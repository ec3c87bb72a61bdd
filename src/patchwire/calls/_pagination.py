"""Pagination: walk every page of a list action and yield its records.

Each page is an ordinary call through ``CallPath.execute`` — validated, authorised,
retried and recorded like any other — whose request carries the page to read (a
:class:`PageCursor`: query parameters or the next URL). The styles are declared in the
connector (see docs/connectors.md):

- ``cursor``: a cursor from the body (``next_cursor``) or a header (``cursor_header``);
- ``page``: page numbers from ``first_page`` until ``total_pages`` or a short page;
- ``offset``: an offset advanced by the records received until ``has_more`` is false or
  a page comes back short;
- ``link``: the RFC 8288 ``Link`` header's ``rel="next"``;
- ``next_url``: a next URL taken from the body;
- ``relay``: a GraphQL (Relay) connection: records from its ``nodes`` (or
  ``edges[].node``), the next page from ``pageInfo { hasNextPage endCursor }``, the cursor
  sent as an argument (``cursor_variable``, a GraphQL variable: never text in the document).

For a GraphQL action every style's page, offset, cursor and page size are arguments (its
variables), never query parameters.

Safety: a cursor or URL seen before, or a page identical to the previous one, is a loop
and fails with :class:`PaginationError` instead of spinning; pages are bounded by
``max_pages``; a next URL on another origin than the connection's is refused, because the
connection's credentials would go with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin

import orjson

from patchwire.calls._action import CompiledAction
from patchwire.calls._bodies import read_answer
from patchwire.calls._graphql import GraphQLAdapter
from patchwire.calls._request import CallOutcome, CallRequest, PageCursor, ValidatedCall
from patchwire.connectors.spec import Pagination
from patchwire.errors import CallContext, PaginationError, ResponseMappingError
from patchwire.expressions import Expression, ExpressionError, compile_expression
from patchwire.http import RawResponse, Redactor, find_link

__all__ = ["DEFAULT_MAX_PAGES", "Pages", "effective_pagination", "paginate"]

#: pages read when the caller sets no bound: far beyond any sane listing, but finite, so a
#: cursor that changes forever cannot keep a worker busy forever
DEFAULT_MAX_PAGES = 1000


def effective_pagination(compiled: CompiledAction) -> Pagination:
    """The action's own pagination, else the connector's default."""
    return compiled.spec.pagination or compiled.connector.pagination


class Pages(Protocol):
    """What a walk needs of the call path (``CallPath``)."""

    def action(self, qualified: str) -> CompiledAction: ...

    async def connection_name(self, action: CompiledAction, connection: str | None,
                              end_user: str | None = None) -> str: ...

    async def execute(self, request: CallRequest | ValidatedCall) -> CallOutcome: ...


async def paginate(
    calls: Pages, request: CallRequest, *, max_items: int | None = None,
    max_pages: int | None = None,
) -> AsyncIterator[Any]:
    """Yield every record of a list action, page after page (see ``CallPath.paginate``),
    each page one ``calls.execute``. ``request.request_id``, when given, is sent with every
    page so their records can be grouped."""
    compiled = calls.action(request.action)
    spec = effective_pagination(compiled)
    context = CallContext(action=compiled.qualified, connection=request.connection)
    if spec.style == "none":
        raise PaginationError(
            f"{compiled.qualified} does not paginate: neither the action nor connector "
            f"{compiled.connector.name!r} declares a pagination style; call it without "
            "paginate, or declare `pagination:` in the connector",
            context=context,
        )
    if max_items is not None and max_items < 0:
        raise ValueError("max_items must be >= 0")
    if max_pages is not None and max_pages < 1:
        raise ValueError("max_pages must be >= 1")
    _check_spec(compiled, spec, context)
    if max_items == 0:
        return
    walker = _Walker(compiled, spec, max_items, request.arguments)
    # Named once: no default lookup for every page.
    context.connection = await calls.connection_name(compiled, request.connection,
                                                     request.end_user)
    request = dataclasses.replace(request, connection=context.connection)
    page_bound = max_pages or DEFAULT_MAX_PAGES
    yielded = 0
    # Bounded: at most page_bound pages, each one call.
    for page_number in range(1, page_bound + 1):
        page = walker.page_request(request)
        # The first page's call validates the arguments (a refusal is logged like any
        # call's); the pages after it send the same arguments, checked already.
        outcome = await calls.execute(page if page_number == 1 else ValidatedCall(page, compiled))
        records, more, stop = walker.read(outcome, page_number, context)
        for record in records:
            yield record
            yielded += 1
            if max_items is not None and yielded >= max_items:
                return
        if stop is not None:
            # Raised after this page's records: they are good, only the way on is broken.
            raise stop
        if not more:
            return
    if max_pages is None:
        raise PaginationError(
            f"{compiled.qualified} still had pages after {DEFAULT_MAX_PAGES}; pass max_pages "
            "to read further (or fewer) pages on purpose",
            context=context,
        )


@dataclass
class _Walker:
    """The state of one walk: what the next request sends and how a page is read."""

    compiled: CompiledAction
    spec: Pagination
    max_items: int | None
    arguments: Any
    #: query parameters the next request sets (cursor, page, offset)
    params: dict[str, str] = field(default_factory=dict)
    #: the next page's absolute URL (link and next_url styles)
    url: str | None = None
    #: page size each request asks for, when known: a shorter page is the last one
    limit: int | None = None
    #: the page size the walk asks for when the action's query sets none
    page_size: tuple[str, int] | None = None
    seen: set[str] = field(default_factory=set)
    last_page_digest: bytes | None = None
    #: relay: the arguments the next page's call sends (cursor and page size set)
    relay_arguments: dict[str, Any] | None = None
    #: a GraphQL action: the page, offset, cursor and size are arguments (variables),
    #: not query parameters
    in_variables: bool = False

    def __post_init__(self) -> None:
        s = self.spec
        self.in_variables = isinstance(self.compiled.adapter, GraphQLAdapter)
        self._connection = _compile(s.connection)
        if s.style == "relay":
            self._relay_start()
            self._items = _compile(s.items)
            return
        if s.style == "page":
            self.params[s.page_param] = str(s.first_page)
        elif s.style == "offset":
            self.params[s.offset_param] = "0"
        self._items = _compile(s.items)
        self._next_cursor = _compile(s.next_cursor)
        self._total_pages = _compile(s.total_pages)
        self._has_more = _compile(s.has_more)
        self._next_url = _compile(s.next_url)
        if s.limit_param:
            given = (self._argument(s.limit_param) if self.in_variables
                     else self.compiled.query_value(s.limit_param, self.arguments)
                     if isinstance(self.arguments, Mapping) else None)
            if given is not None:
                self.limit = _as_int(given)
            elif s.page_size:
                # Ask for no more than the caller wants: max_items=5 reads one small page.
                size = s.page_size if self.max_items is None else min(s.page_size,
                                                                       self.max_items)
                self.page_size = (s.limit_param, size)
                self.limit = size

    def _relay_start(self) -> None:
        s = self.spec
        args = dict(self.arguments) if isinstance(self.arguments, Mapping) else {}
        if s.limit_param and s.limit_param not in args and s.page_size:
            # the page size is an argument too (`first`): no more than the caller wants
            size = s.page_size if self.max_items is None else min(s.page_size, self.max_items)
            args[s.limit_param] = size
        self.relay_arguments = args

    # -- request -----------------------------------------------------------------------

    def page_request(self, request: CallRequest) -> CallRequest:
        """The call reading the next page."""
        if self.relay_arguments is not None:
            return dataclasses.replace(request, arguments=dict(self.relay_arguments))
        if self.in_variables:
            args = dict(self.arguments) if isinstance(self.arguments, Mapping) else {}
            s = self.spec
            for key, value in self.params.items():
                # page numbers and offsets are Int variables; a cursor is text
                args[key] = int(value) if key in (s.page_param, s.offset_param) else value
            if self.page_size is not None and self.page_size[0] not in args:
                args[self.page_size[0]] = self.page_size[1]
            return dataclasses.replace(request, arguments=args)
        return dataclasses.replace(request, page=self.cursor())

    def _argument(self, name: str) -> str | None:
        value = self.arguments.get(name) if isinstance(self.arguments, Mapping) else None
        return None if value is None else str(value)

    def cursor(self) -> PageCursor:
        """The page the next request reads."""
        return PageCursor(dict(self.params), self.url, self.page_size)

    # -- response ----------------------------------------------------------------------

    def read(
        self, outcome: CallOutcome, page_number: int, context: CallContext
    ) -> tuple[list[Any], bool, PaginationError | None]:
        """This page's records, whether another page should be fetched, and why the walk
        cannot go on when it cannot (a loop, an unreadable next page)."""
        raw = outcome.raw
        assert raw is not None
        if self.spec.style == "relay":
            try:
                return self._relay_page(outcome.result, page_number, context)
            except PaginationError as exc:
                return [], False, exc
        body = outcome.result if self.compiled.response is None else _parse(raw, context)
        records = self._records(body, outcome.result, context)
        if self.spec.style in ("page", "offset"):
            # Raised before yielding: a repeated page's records are duplicates.
            self._check_not_repeated(raw, records, page_number, context)
        try:
            return records, self._advance(body, raw, records, page_number, context), None
        except PaginationError as exc:
            return records, False, exc

    def _advance(
        self, body: Any, raw: RawResponse, records: list[Any], page_number: int,
        context: CallContext,
    ) -> bool:
        s = self.spec
        if s.style == "cursor":
            return self._next_cursor_step(body, raw, page_number, context)
        if s.style in ("link", "next_url"):
            return self._next_url_step(body, raw, page_number, context)
        if s.style == "page":
            return self._next_page_step(body, records, page_number, context)
        return self._next_offset_step(body, records, context)

    def _records(self, body: Any, result: Any, context: CallContext) -> list[Any]:
        if self._items is not None:
            value = self._eval(self._items, body, "items", context)
        elif isinstance(body, list) or body is None:
            value = body
        elif isinstance(result, list):
            value = result  # the action's response mapping already selects the records
        else:
            raise PaginationError(
                f"{self.compiled.qualified}: a page is not a list; declare `items` (JSONata "
                "selecting the records) in its pagination",
                context=context,
            )
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def _next_cursor_step(
        self, body: Any, raw: RawResponse, page_number: int, context: CallContext
    ) -> bool:
        s = self.spec
        cursor: Any
        if s.cursor_header:
            cursor = raw.headers.get(s.cursor_header)
        elif self._next_cursor is not None:
            cursor = self._eval(self._next_cursor, body, "next_cursor", context)
        else:
            raise AssertionError("checked by _check_spec")
        if cursor is None or cursor is False or cursor == "":
            return False
        text = _scalar_text(cursor)
        self._remember(text, "cursor", page_number, context)
        self.params[s.cursor_param] = text
        return True

    def _next_url_step(
        self, body: Any, raw: RawResponse, page_number: int, context: CallContext
    ) -> bool:
        self.seen.add(raw.url)
        target: str | None
        if self.spec.style == "link":
            target = find_link(raw.headers.getall("Link", []), "next", raw.url)
        else:
            assert self._next_url is not None  # checked by _check_spec
            value = self._eval(self._next_url, body, "next_url", context)
            target = urljoin(raw.url, str(value)) if value else None
        if not target:
            return False
        self._remember(target, "next URL", page_number, context)
        self.url = target
        return True

    def _next_page_step(
        self, body: Any, records: list[Any], page_number: int, context: CallContext
    ) -> bool:
        s = self.spec
        if not records:
            return False
        if self._total_pages is not None:
            total = _as_int(self._eval(self._total_pages, body, "total_pages", context))
            if total is not None and page_number >= total:
                return False
        elif self.limit is not None and len(records) < self.limit:
            return False
        self.params[s.page_param] = str(s.first_page + page_number)
        return True

    def _next_offset_step(self, body: Any, records: list[Any], context: CallContext) -> bool:
        s = self.spec
        if not records:
            return False
        if self._has_more is not None:
            if not self._eval(self._has_more, body, "has_more", context):
                return False
        elif self.limit is not None and len(records) < self.limit:
            return False
        offset = int(self.params.get(s.offset_param, "0")) + len(records)
        self.params[s.offset_param] = str(offset)
        return True

    def _relay_page(self, result: Any, page_number: int, context: CallContext
                    ) -> tuple[list[Any], bool, PaginationError | None]:
        if isinstance(result, dict) and result.get("partial") is True and "data" in result:
            result = result["data"]  # a partial answer's records are still records
        conn = (self._eval(self._connection, result, "connection", context)
                if self._connection is not None else result)
        if not isinstance(conn, dict):
            raise PaginationError(
                f"{self.compiled.qualified}: a page is not a Relay connection (an object "
                "with nodes or edges and pageInfo); declare `connection` (JSONata selecting "
                "it from the result) in its pagination", context=context)
        if self._items is not None:
            value = self._eval(self._items, conn, "items", context)
            records = [] if value is None else value if isinstance(value, list) else [value]
        elif isinstance(conn.get("nodes"), list):
            records = conn["nodes"]
        elif isinstance(conn.get("edges"), list):
            records = [e.get("node") if isinstance(e, dict) else e for e in conn["edges"]]
        elif conn.get("nodes") is None and conn.get("edges") is None and "pageInfo" in conn:
            records = []
        else:
            raise PaginationError(
                f"{self.compiled.qualified}: the connection has neither nodes nor edges "
                "lists; select `nodes` (or `edges { node }`) in the document",
                context=context)
        info = conn.get("pageInfo")
        if not isinstance(info, dict):
            return records, False, PaginationError(
                f"{self.compiled.qualified}: the connection has no pageInfo; select "
                "`pageInfo { hasNextPage endCursor }` to read further pages", context=context)
        if info.get("hasNextPage") is not True:
            return records, False, None
        cursor = info.get("endCursor")
        if not isinstance(cursor, str | int) or isinstance(cursor, bool) or cursor == "":
            return records, False, PaginationError(
                f"{self.compiled.qualified}: pageInfo says there is a next page but gives no "
                "endCursor", context=context)
        text = str(cursor)
        try:
            self._remember(text, "cursor", page_number, context)
        except PaginationError as exc:
            return records, False, exc
        assert self.relay_arguments is not None
        self.relay_arguments[self.spec.cursor_variable] = text
        return records, True, None

    # -- safety ------------------------------------------------------------------------

    def _remember(self, key: str, what: str, page_number: int, context: CallContext) -> None:
        if key in self.seen:
            # The value itself stays out of the message: cursors and URLs may carry tokens.
            raise PaginationError(
                f"{self.compiled.qualified}: page {page_number} pointed to a {what} already "
                "followed; stopped to avoid looping forever",
                context=context,
            )
        self.seen.add(key)

    def _check_not_repeated(
        self, raw: RawResponse, records: list[Any], page_number: int, context: CallContext
    ) -> None:
        # An API that ignores the page or offset parameter answers the same page forever.
        digest = hashlib.blake2b(raw.body, digest_size=16).digest()
        if records and digest == self.last_page_digest:
            raise PaginationError(
                f"{self.compiled.qualified}: page {page_number} is identical to the one "
                f"before; does the API ignore {self._position_param()!r}? stopped to avoid "
                "looping forever",
                context=context,
            )
        self.last_page_digest = digest

    def _position_param(self) -> str:
        return self.spec.page_param if self.spec.style == "page" else self.spec.offset_param

    def _eval(self, expr: Expression, body: Any, what: str, context: CallContext) -> Any:
        try:
            return expr.evaluate(body)
        except ExpressionError as exc:
            raise PaginationError(
                f"{self.compiled.qualified}: pagination {what} {expr.source!r} failed: {exc}",
                context=context,
            ) from None


def _check_spec(compiled: CompiledAction, spec: Pagination, context: CallContext) -> None:
    needs = {"cursor": "`next_cursor` or `cursor_header`", "next_url": "`next_url`"}
    missing = (
        (spec.style == "cursor" and not (spec.next_cursor or spec.cursor_header))
        or (spec.style == "next_url" and not spec.next_url)
    )
    if missing:
        raise PaginationError(
            f"{compiled.qualified}: {spec.style} pagination needs {needs[spec.style]} to "
            "find the next page",
            context=context,
        )


def _compile(source: str | None) -> Expression | None:
    return compile_expression(source) if source else None


def _parse(raw: RawResponse, context: CallContext) -> Any:
    """A page's body as data, read by its content type like any answer (JSON, XML, CSV),
    for the pagination expressions when the action maps its result."""
    if not raw.body:
        return None
    try:
        return read_answer(raw, context, _NO_SECRETS, max_blob_bytes=None)
    except ResponseMappingError:
        # not its message: it may quote the body, and this read has no redactor
        raise PaginationError("a page's body cannot be read as JSON, XML or CSV",
                              context=context) from None


#: the page's mapping read the same body with the connection's redactor already; this
#: read only feeds the pagination expressions, and its errors quote nothing
_NO_SECRETS = Redactor([])


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
