"""What the pages show of a connection's kept tokens — OAuth2's or a token exchange's (the
overview and the Connections page alike): read through the auth package's TokenStates, so
no token reaches a page."""

from __future__ import annotations

from typing import Any

from patchwire.auth import TokenState
from patchwire.connectors.spec import KEPT_TOKEN_AUTHS
from patchwire.errors import PatchwireError
from patchwire.store.records import ConnectionRecord

from ._services import DashboardServices

__all__ = ["keeps_tokens", "token_dict", "token_view"]


def keeps_tokens(services: DashboardServices, connector: str) -> bool:
    """Whether the connector's auth keeps a token in its connections (OAuth2, token
    exchange), which pages then show the state of."""
    registry = services.connections.connectors
    return connector in registry and isinstance(registry.get(connector).auth,
                                                KEPT_TOKEN_AUTHS)


def token_dict(state: TokenState) -> dict[str, Any]:
    """What a page shows of an OAuth2 connection's tokens: whether there is one, when it
    expires, whether a person must authorise again (never a token)."""
    return {"has_token": state.has_token, "needs_reauth": state.needs_reauth,
            "expires_at": state.expires_at}


def token_view(services: DashboardServices, rec: ConnectionRecord) -> dict[str, Any] | None:
    """:func:`token_dict` of a connection keeping tokens, read already (None for other
    auth schemes), opened by the auth package's TokenStates."""
    if not keeps_tokens(services, rec.connector):
        return None
    try:
        return token_dict(services.tokens.of_record(rec))
    except PatchwireError as exc:
        return {"error": f"cannot read: {exc.code}"}
