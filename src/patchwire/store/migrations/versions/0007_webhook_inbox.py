"""Inbound webhooks: sources, the inbox (dedupe key per source), rejected requests.

Revision ID: 0007
Revises: 0006
Create Date: 2025-01-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_sources",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scheme", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("event_id_path", sa.Text(), nullable=True),
        sa.Column("event_type_path", sa.Text(), nullable=True),
        sa.Column("max_body_bytes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_sources"),
        sa.UniqueConstraint("name", name="uq_webhook_sources_name"),
    )
    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(300), nullable=True),
        sa.Column("type", sa.String(200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("processed_at", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_inbox"),
        sa.UniqueConstraint("source", "event_id", name="uq_webhook_inbox_source_event_id"),
    )
    op.create_index("ix_webhook_inbox_status_next_attempt_at", "webhook_inbox",
                    ["status", "next_attempt_at"])
    op.create_index("ix_webhook_inbox_source_received_at", "webhook_inbox",
                    ["source", "received_at"])
    op.create_index("ix_webhook_inbox_received_at", "webhook_inbox", ["received_at"])
    op.create_table(
        "webhook_rejections",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body_excerpt", sa.Text(), nullable=True),
        sa.Column("body_bytes", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_rejections"),
    )
    op.create_index("ix_webhook_rejections_source_received_at", "webhook_rejections",
                    ["source", "received_at"])
    op.create_index("ix_webhook_rejections_received_at", "webhook_rejections",
                    ["received_at"])


def downgrade() -> None:
    op.drop_table("webhook_rejections")
    op.drop_table("webhook_inbox")
    op.drop_table("webhook_sources")
