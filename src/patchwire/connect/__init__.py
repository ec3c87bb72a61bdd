"""Connect links: an end user connects an account from the chat.

A platform's backend (or a tool finding no connection) asks for a single-use link
(:class:`ConnectSessions`, which meets :class:`patchwire.ports.ConnectLinks`); the end user
opens ``{public_url}/connect/{token}``, a page ``patchwire serve`` hosts
(:func:`connect_pages`), and either signs in at the provider (OAuth2: code + PKCE + state,
the deployment's :class:`OAuthApps` as the client) or fills in the connector's settings,
proved with its ``test:`` call before they are saved (:class:`ConnectFlow`). The backend
follows the link with ``GET /api/v1/connect-sessions/{token}?wait=`` (a long poll).
"""

from __future__ import annotations

from patchwire.connect._apps import MAX_CLIENT_ID, MAX_CLIENT_SECRET, OAuthApp, OAuthApps
from patchwire.connect._flow import (
    MAX_FIELD,
    Accounts,
    ConnectFlow,
    FormField,
    Offer,
    clean,
    new_connection_name,
)
from patchwire.connect._pages import MAX_FORM_BYTES, connect_pages
from patchwire.connect._sessions import (
    DEFAULT_SESSION_TTL,
    MAX_CONNECTORS,
    MAX_RETURN_URL,
    MAX_SESSION_TTL,
    MAX_WAIT,
    ConnectSession,
    ConnectSessions,
    check_return_url,
    session_id,
)

__all__ = [
    "DEFAULT_SESSION_TTL",
    "MAX_CLIENT_ID",
    "MAX_CLIENT_SECRET",
    "MAX_CONNECTORS",
    "MAX_FIELD",
    "MAX_FORM_BYTES",
    "MAX_RETURN_URL",
    "MAX_SESSION_TTL",
    "MAX_WAIT",
    "Accounts",
    "ConnectFlow",
    "ConnectSession",
    "ConnectSessions",
    "FormField",
    "OAuthApp",
    "OAuthApps",
    "Offer",
    "check_return_url",
    "clean",
    "connect_pages",
    "new_connection_name",
    "session_id",
]
