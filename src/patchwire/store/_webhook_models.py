"""Inbound webhooks: sources, the inbox, rejected events (migration 0007).

Times are epoch seconds (floats), like the flow tables: the receiver writes inbox rows with
plain driver statements on its hot path, and the processor compares lease and retry times
on every claim.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from patchwire.store._base import Base

__all__ = ["WebhookInboxRow", "WebhookRejectionRow", "WebhookSourceRow"]


class WebhookSourceRow(Base):
    """A sender of webhooks (``/hooks/{name}``): how its events are verified and keyed.

    ``secrets`` is a vault token (AES-GCM, bound to the row's id) of the active signing
    secrets; ``scheme`` is the verification scheme's settings (no secret material).
    """

    __tablename__ = "webhook_sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    scheme: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    secrets: Mapped[str] = mapped_column(Text, nullable=False)
    event_id_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    event_type_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    max_body_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class WebhookInboxRow(Base):
    """A verified inbound event, committed before it was acknowledged.

    ``(source, event_id)`` is the dedupe key: a sender's retry of an event already here is
    acknowledged and dropped (events without an id are never deduplicated by it).
    ``content_digest`` (migration 0013) is the SHA-256 of the signed content where the
    scheme does not sign the event id (GitHub, Shopify...): ``(content_digest, source)`` is
    unique too, so a captured body replayed under a new delivery id is a duplicate; the
    writer clears digests older than the replay window, after which the body counts again.
    ``owner`` and
    ``lease_until`` say which processor has the event claimed; ``next_attempt_at`` when a
    pending event is due (later than ``received_at`` after a failed attempt).
    """

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("source", "event_id", name="uq_webhook_inbox_source_event_id"),
        Index("ix_webhook_inbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_inbox_source_received_at", "source", "received_at"),
        Index("ix_webhook_inbox_received_at", "received_at"),
        Index("uq_webhook_inbox_content_digest_source", "content_digest", "source",
              unique=True, sqlite_where=text("content_digest IS NOT NULL"),
              postgresql_where=text("content_digest IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), nullable=False)
    event_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload: Mapped[Any] = mapped_column(JSON, nullable=True)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    received_at: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    next_attempt_at: Mapped[float] = mapped_column(Float, nullable=False)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    processed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class WebhookRejectionRow(Base):
    """An inbound request that was refused (bad signature, replay, too large...), kept for
    debugging: headers with signature and credential values replaced, a body excerpt."""

    __tablename__ = "webhook_rejections"
    __table_args__ = (
        Index("ix_webhook_rejections_source_received_at", "source", "received_at"),
        Index("ix_webhook_rejections_received_at", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    body_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    received_at: Mapped[float] = mapped_column(Float, nullable=False)
