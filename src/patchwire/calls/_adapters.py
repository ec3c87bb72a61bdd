"""Actions that are not REST request templates: the protocol adapter a compiled action
hands its request and answer to (GraphQL operations, SOAP operations).

An adapter builds the HTTP request from the validated arguments and reads the answer;
the call path around it (connection, auth, SSRF guard, limits, retries, breaker, call log,
redaction) is the same for every action.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from patchwire.calls._connection import ResolvedConnection
from patchwire.connectors.spec import ActionSpec, ConnectorSpec
from patchwire.errors import CallContext, UpstreamResponseError
from patchwire.http import PreparedRequest, RawResponse, Redactor

__all__ = ["ActionAdapter", "adapter_for"]


class ActionAdapter(Protocol):
    """How one non-REST action is sent and read."""

    def render(self, arguments: Mapping[str, Any], conn: ResolvedConnection,
               context: CallContext) -> PreparedRequest: ...

    def map_response(self, raw: RawResponse, arguments: Mapping[str, Any],
                     context: CallContext, redact: Redactor) -> Any:
        """The result of a 2xx answer, or raise its typed error (a GraphQL answer may be
        a 200 holding errors, a SOAP fault a 500 or a 200)."""
        ...

    def error_for(self, raw: RawResponse, arguments: Mapping[str, Any],
                  context: CallContext, redact: Redactor) -> UpstreamResponseError | None:
        """The typed error of a non-2xx answer, or None to let the REST rules decide."""
        ...

    def pause_after(self, raw: RawResponse) -> float | None:
        """Seconds the connection must wait before its next call when the answer's body
        says its budget is spent (GraphQL cost rules), else None."""
        ...


def adapter_for(connector: ConnectorSpec, name: str,
                action: ActionSpec) -> ActionAdapter | None:
    """The adapter of a GraphQL or SOAP action; None for REST and custom code."""
    if action.graphql is not None:
        from patchwire.calls._graphql import GraphQLAdapter

        return GraphQLAdapter(connector, name, action)
    if action.soap is not None:
        from patchwire.calls._soap import SoapAdapter

        return SoapAdapter(connector, name, action)
    return None
