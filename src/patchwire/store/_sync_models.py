"""Sync: synced records and sync state (migration 0009).

Times are epoch seconds (floats), like the flow tables: the sync engine compares them on
every poll and its clock is replaceable in tests.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from patchwire.store._base import Base

__all__ = ["SyncRecordRow", "SyncStateRow"]


class SyncRecordRow(Base):
    """One upstream record copied by a sync, per (model, connection, record id).

    ``content_hash`` (SHA-256 of the canonical JSON) is the change detection: a poll that
    sees the same content writes nothing and emits nothing. ``version`` grows by one per
    change and names the change in its event id, so a re-run never publishes it twice.
    A deleted record keeps its row (``deleted_at`` set) so its deletion is queryable and
    a record that comes back is ``record.created`` again with a higher version.
    """

    __tablename__ = "sync_records"
    __table_args__ = (
        Index("ix_sync_records_model_connection_updated_at", "model", "connection",
              "updated_at"),
        Index("ix_sync_records_sync_id_connection", "sync_id", "connection"),
    )

    model: Mapped[str] = mapped_column(String(100), primary_key=True)
    connection: Mapped[str] = mapped_column(String(200), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    sync_id: Mapped[str] = mapped_column(String(200), nullable=False)
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    #: lower-cased text of the record's string and number values, for ``?q=`` (LIKE works
    #: the same on SQLite and PostgreSQL; no full-text extension needed)
    search_text: Mapped[str] = mapped_column(Text, nullable=False)
    #: the upstream's own "updated at" as it gave it (the sync's ``updated_at``), if any
    source_updated_at: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: poll | webhook | reconcile: what made the last change
    changed_by: Mapped[str] = mapped_column(String(16), nullable=False)
    first_seen_at: Mapped[float] = mapped_column(Float, nullable=False)
    #: when the content last changed here (created, updated or deleted)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)
    #: when a poll, webhook or reconciliation last saw the record (changed or not)
    seen_at: Mapped[float] = mapped_column(Float, nullable=False)
    deleted_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class SyncStateRow(Base):
    """Where a sync stands for one connection: its cursor, the schedule slots it claimed,
    how the last poll and reconciliation went, and who is polling right now (a lease)."""

    __tablename__ = "sync_states"

    sync_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    connection: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: the cursor or updated-since watermark the next poll starts from
    cursor: Mapped[Any] = mapped_column(JSON, nullable=True)
    #: the last schedule slot claimed for a poll / a reconciliation (compare-and-set, so a
    #: slot runs once across processes)
    poll_slot: Mapped[float | None] = mapped_column(Float, nullable=True)
    reconcile_slot: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_poll_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_reconcile_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)
