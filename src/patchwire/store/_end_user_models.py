"""Tables for many end users in one deployment (migration 0014): end-user tokens, connect
sessions (the single-use links an end user connects an account with) and OAuth apps (the
deployment's client credentials per connector). See ``store/end_users.py``.

Only digests of tokens are stored; client secrets and PKCE verifiers are vault tokens
(encrypted, bound to their row).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from patchwire.store._base import Base, UTCDateTime

__all__ = ["ConnectSessionRow", "EndUserTokenRow", "OAuthAppRow"]


class EndUserTokenRow(Base):
    """A short-lived token acting as one end user (``pwu_<id>_<secret>``): it sees and acts
    on that end user's connections, tool calls, runs and approvals only."""

    __tablename__ = "end_user_tokens"
    __table_args__ = (Index("ix_end_user_tokens_end_user", "end_user"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    end_user: Mapped[str] = mapped_column(String(200), nullable=False)
    #: hex SHA-256 of the secret part
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    #: the API key that created it (None: the CLI or loopback without keys)
    created_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConnectSessionRow(Base):
    """A connect link: which end user may connect which connectors, until when, and what
    came of it. ``id`` is the SHA-256 of the link's token (the token itself is not kept).

    ``status``: ``pending`` until an account is connected through it (``connected``, with
    ``connection``); ``expired`` is derived from ``expires_at``. ``oauth_state`` (digest) and
    ``code_verifier`` (vault token) hold an OAuth2 authorization in flight.
    """

    __tablename__ = "connect_sessions"
    __table_args__ = (
        Index("ix_connect_sessions_end_user", "end_user"),
        Index("ix_connect_sessions_oauth_state", "oauth_state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    end_user: Mapped[str] = mapped_column(String(200), nullable=False)
    connectors: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    return_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the connection to (re)connect, when the link is a reconnect link
    connection: Mapped[str | None] = mapped_column(String(200), nullable=True)
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    oauth_connector: Mapped[str | None] = mapped_column(String(200), nullable=True)
    oauth_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    code_verifier: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the last failure shown on the page (no secret: a class and a short message)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class OAuthAppRow(Base):
    """The deployment's OAuth2 client for one connector: its client id, the secret (a vault
    token) and the scopes asked for."""

    __tablename__ = "oauth_apps"

    connector: Mapped[str] = mapped_column(String(200), primary_key=True)
    client_id: Mapped[str] = mapped_column(Text, nullable=False)
    client_secret: Mapped[str] = mapped_column(Text, nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
