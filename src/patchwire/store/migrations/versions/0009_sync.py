"""Sync: synced records per (model, connection, record id) and each sync's state.

Revision ID: 0009
Revises: 0008
Create Date: 2025-01-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_records",
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("record_id", sa.String(300), nullable=False),
        sa.Column("sync_id", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("source_updated_at", sa.String(64), nullable=True),
        sa.Column("changed_by", sa.String(16), nullable=False),
        sa.Column("first_seen_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.Column("deleted_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("model", "connection", "record_id", name="pk_sync_records"),
    )
    op.create_index("ix_sync_records_model_connection_updated_at", "sync_records",
                    ["model", "connection", "updated_at"])
    op.create_index("ix_sync_records_sync_id_connection", "sync_records",
                    ["sync_id", "connection"])
    op.create_table(
        "sync_states",
        sa.Column("sync_id", sa.String(200), nullable=False),
        sa.Column("connection", sa.String(200), nullable=False),
        sa.Column("cursor", sa.JSON(), nullable=True),
        sa.Column("poll_slot", sa.Float(), nullable=True),
        sa.Column("reconcile_slot", sa.Float(), nullable=True),
        sa.Column("last_poll_at", sa.Float(), nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_reconcile_at", sa.Float(), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sync_id", "connection", name="pk_sync_states"),
    )


def downgrade() -> None:
    op.drop_table("sync_states")
    op.drop_index("ix_sync_records_sync_id_connection", table_name="sync_records")
    op.drop_index("ix_sync_records_model_connection_updated_at", table_name="sync_records")
    op.drop_table("sync_records")
