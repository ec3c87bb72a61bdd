"""GraphQL actions (issue 17, section 2): to be written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patchwire.calls._connection import ResolvedConnection
from patchwire.connectors.spec import ActionSpec, ConnectorSpec
from patchwire.errors import CallContext, RequestRenderError, UpstreamResponseError
from patchwire.http import PreparedRequest, RawResponse, Redactor

__all__ = ["GraphQLAdapter"]


class GraphQLAdapter:
    def __init__(self, connector: ConnectorSpec, name: str, action: ActionSpec) -> None:
        self.connector = connector
        self.name = name
        self.action = action

    def render(self, arguments: Mapping[str, Any], conn: ResolvedConnection,
               context: CallContext) -> PreparedRequest:
        raise RequestRenderError("GraphQL actions are not supported yet", context=context)

    def map_response(self, raw: RawResponse, arguments: Mapping[str, Any],
                     context: CallContext, redact: Redactor) -> Any:
        raise RequestRenderError("GraphQL actions are not supported yet", context=context)

    def error_for(self, raw: RawResponse, arguments: Mapping[str, Any],
                  context: CallContext, redact: Redactor) -> UpstreamResponseError | None:
        return None
