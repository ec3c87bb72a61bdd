"""Outbound webhooks: subscriptions and deliveries (migration 0008)."""

from __future__ import annotations

from patchwire.store.models import Base

__all__: list[str] = []

_ = Base
