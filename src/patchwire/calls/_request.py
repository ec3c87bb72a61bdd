"""The request object: what one call asks for, and what it produced.

A :class:`CallRequest` says everything about a call up front — the action, its arguments,
the connection, the ids it is known by, the idempotency key a retried step must reuse and
the page it reads — so nothing changes the rendered request from outside the call path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from patchwire.calls._action import CompiledAction
from patchwire.errors import CallContext, PaginationError
from patchwire.http import PreparedRequest, RawResponse

__all__ = ["CallOutcome", "CallRequest", "PageCursor", "ValidatedCall"]


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Which page a call reads, set on its rendered request.

    ``params`` are query parameters (a cursor, a page number, an offset) set over the
    action's own; ``url`` is the next page's absolute URL (``link`` and ``next_url``
    styles), followed only on the connection's own origin; ``page_size`` is a (parameter,
    size) pair sent unless the action's query already sets that parameter.
    """

    params: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    page_size: tuple[str, int] | None = None

    def apply(self, req: PreparedRequest, context: CallContext) -> None:
        """Point the rendered request at this page (the call path does, before sending)."""
        params = dict(req.params or {})
        if self.page_size is not None and self.page_size[0] not in params:
            params[self.page_size[0]] = str(self.page_size[1])
        if self.url is not None:
            _check_same_origin(self.url, req.url, context)
            # The next URL is followed as given; of the rendered parameters only those it
            # lacks are added (query-string credentials, mainly).
            present = {k for k, _ in parse_qsl(urlsplit(self.url).query,
                                               keep_blank_values=True)}
            params = {k: v for k, v in params.items() if k not in present}
            req.url = self.url
        params.update(self.params)
        req.params = params or None


@dataclass(slots=True)  # not frozen: its __init__ would cost ~2 µs on every call
class CallRequest:
    """One call of an action. Nothing changes a request once made (the call path never
    does; a walk over pages makes one request per page).

    ``connection`` None: the connector's only connection. ``request_id`` is sent as
    ``X-Request-Id`` (a new id when None) and ``run_id`` ties the call to a flow run in
    errors. ``idempotency_key`` goes in the connector's idempotency header of a
    non-idempotent action, unless the rendered request has one: a flow step re-run after a
    crash sends the same key, so the upstream applies it once. ``page`` says which page of
    a listing to read. ``end_user``: the call acts for that end user, through one of their
    connections only (the named one must be theirs; None names their default one).
    """

    action: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    connection: str | None = None
    request_id: str | None = None
    run_id: str | None = None
    idempotency_key: str | None = None
    page: PageCursor | None = None
    end_user: str | None = None


@dataclass(frozen=True, slots=True)
class ValidatedCall:
    """A call request whose arguments passed its action's input schema.

    Made by ``CallPath.validate``; ``CallPath.execute`` sends it without checking the
    arguments again. It keeps the compiled action it was checked against, so a definition
    reloaded in between does not change what is sent.
    """

    request: CallRequest
    action: CompiledAction


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one successful call produced, with how it went."""

    result: Any
    status: int
    attempts: int
    latency_ms: float
    request_id: str
    #: the upstream's answer as received: pagination reads cursors, links and records from
    #: the body and headers rather than from the mapped result
    raw: RawResponse | None = field(default=None, repr=False, compare=False)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # unparseable: never equal to a real origin
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _check_same_origin(next_url: str, request_url: str, context: CallContext) -> None:
    if _origin(next_url) != _origin(request_url):
        scheme, host, port = _origin(next_url)
        raise PaginationError(
            f"refused to follow a next-page URL to {scheme}://{host}:{port}, another origin "
            "than the connection's base URL: its credentials must not be sent to another host",
            context=context,
        )
