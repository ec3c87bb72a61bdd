"""Outbound webhooks: subscriptions, deliveries and their attempts (migration 0008).

Times are epoch seconds (floats), like runs and events: the delivery worker compares them
on every claim and retry.
"""

from __future__ import annotations

from sqlalchemy import JSON, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from patchwire.store._base import Base

__all__ = ["WebhookAttemptRow", "WebhookDeliveryRow", "WebhookSubscriptionRow"]


class WebhookSubscriptionRow(Base):
    """An endpoint that receives events whose type matches one of ``event_types``.

    ``secret`` is a vault token (AAD ``webhook_subscription:<id>``), never the secret.
    ``owner``/``lease_until``: the delivery worker sending to this endpoint right now (one
    at a time, which is what keeps deliveries to an endpoint in order across processes).
    ``retry_at``: when the endpoint's oldest pending delivery may be tried again after a
    failure (NULL: now). ``failing_since``: the first failure of the current streak
    (cleared by a success); five days of it disable the endpoint.
    """

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    event_types: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    secret: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    failing_since: Mapped[float | None] = mapped_column(Float, nullable=True)
    retry_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class WebhookDeliveryRow(Base):
    """One event for one subscription. Deliveries of an endpoint go out in the order of
    their events (``event_created_at``, ``event_id``); one per (subscription, event).

    ``status``: pending, succeeded or failed (schedule exhausted, or 410). ``tries``: the
    attempts of the current schedule (a manual redelivery starts a new one); ``attempts``:
    every attempt ever made (numbers the attempt log).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id",
                         name="uq_webhook_deliveries_subscription_id"),
        Index("ix_webhook_deliveries_subscription_id_status_event",
              "subscription_id", "status", "event_created_at", "event_id"),
        Index("ix_webhook_deliveries_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_type: Mapped[str] = mapped_column(String(200), nullable=False)
    event_created_at: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    tries: Mapped[int] = mapped_column(Integer, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    next_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class WebhookAttemptRow(Base):
    """One HTTP attempt of a delivery: the delivery log. ``error`` is a redacted excerpt
    (no secret, no signature)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery_id_attempt", "delivery_id", "attempt"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(64), nullable=False)
    subscription_id: Mapped[str] = mapped_column(String(64), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[float] = mapped_column(Float, nullable=False)
