"""Inbound webhooks: sources, the inbox, rejected events (migration 0007)."""

from __future__ import annotations

from patchwire.store.models import Base

__all__: list[str] = []

_ = Base
