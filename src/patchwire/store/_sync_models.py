"""Sync: synced records and sync state (migration 0009)."""

from __future__ import annotations

from patchwire.store.models import Base

__all__: list[str] = []

_ = Base
