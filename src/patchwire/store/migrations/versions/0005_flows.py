"""Durable flows: definitions by version, runs, step checkpoints, schedules, events.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flow_versions",
        sa.Column("flow_id", sa.String(200), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("flow_id", "digest", name="pk_flow_versions"),
    )
    op.create_table(
        "flow_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("flow_id", sa.String(200), nullable=False),
        sa.Column("flow_version", sa.Integer(), nullable=False),
        sa.Column("flow_digest", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("input", sa.JSON(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("parent_run_id", sa.String(64), nullable=True),
        sa.Column("parent_step", sa.String(500), nullable=True),
        sa.Column("idempotency_key", sa.String(300), nullable=True),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("wake_at", sa.Float(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_flow_runs"),
        sa.UniqueConstraint("idempotency_key", name="uq_flow_runs_idempotency_key"),
    )
    op.create_index("ix_flow_runs_status_wake_at", "flow_runs", ["status", "wake_at"])
    op.create_index("ix_flow_runs_flow_id_created_at", "flow_runs", ["flow_id", "created_at"])
    op.create_index("ix_flow_runs_created_at", "flow_runs", ["created_at"])
    op.create_index("ix_flow_runs_parent_run_id", "flow_runs", ["parent_run_id"])
    op.create_table(
        "flow_steps",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_flow_steps"),
    )
    op.create_table(
        "flow_schedules",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("last_slot", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_flow_schedules"),
    )
    op.create_table(
        "flow_events",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_flow_events"),
    )
    op.create_index("ix_flow_events_type", "flow_events", ["type"])
    op.create_index("ix_flow_events_created_at", "flow_events", ["created_at"])


def downgrade() -> None:
    op.drop_table("flow_events")
    op.drop_table("flow_schedules")
    op.drop_table("flow_steps")
    op.drop_table("flow_runs")
    op.drop_table("flow_versions")
